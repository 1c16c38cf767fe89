"""The physics world (pybullet): meshes and splits, settled scenes, image grasps in the world, grasp trials."""
