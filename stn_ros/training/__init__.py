"""Training infrastructure shared by every model of the package (one loop, one checkpoint format)."""
