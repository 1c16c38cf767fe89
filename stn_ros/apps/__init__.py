"""Entry points: training and evaluation CLIs, the demo, the self-check, and the process helpers they share."""
