"""Distorted MNIST (the STN paper's experiments): the digits, their samples and the training task."""
