"""Training on the physics world: physics grasp labels and the GQ-CNN task that learns from them."""
