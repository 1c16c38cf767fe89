"""Evaluations (no CLI): physics trials of the shipped nodes and baselines, the analytic, MNIST and gripper-sweep
evaluations, the CUDA-against-CPU agreement harness and the minAreaRect baseline. ``stn_evaluate`` is their CLI."""
