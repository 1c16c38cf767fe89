"""Training on the analytic world: grasp images and scene samples of prisms, the grasp STN and GQ-CNN tasks."""
