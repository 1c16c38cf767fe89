"""grasp_quality_node's compute: canonical grasp images, the gripper, gripper depth, GQ-CNN scoring, markers,
its per-frame steps."""
