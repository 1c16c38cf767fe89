"""Training tasks: what the shared training loop trains (data, model, loss, metrics, export)."""
