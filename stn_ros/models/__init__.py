"""Model architectures: the distorted-MNIST comparison, the GQ-CNN, the grasp STN."""
