"""``stn_evaluate physics``: do the grasps hold? Judged by pybullet on our held-out meshes.

On ``--num-scenes`` physics scenes of :data:`~stn_ros.sim.physics.world.VALIDATION_MESHES` (never in training
data) and our procedural shapes, singulated and cluttered, each method proposes grasps and a simulated
parallel-jaw gripper tries each one once (:func:`~stn_ros.sim.physics.grasp_trial.grasp_trial`, friction ``mu`` of
the gripper, no perturbation):

* ``pipeline``: the shipped nodes as a robot runs them: each frame (``32FC1`` depth + ``CameraInfo``) is
  published over real ROS 2 topics (loopback) to ``stn_node`` -> ``grasp_quality_node`` processes with their
  shipped parameters; every crop of ``~/grasps`` is a grasp; the scene's best is the highest quality;
  ``~/best_grasp`` is recorded when published.
* ``min_area_rect``: ``cv2.minAreaRect`` of each depth proposal's mask (what a real pipeline has, not the
  true mask), closing across its shorter side; the node's gripper depth rule. The scene's pick: the
  proposal nearest the camera (the top of the pile).
* ``random_axis``: the pipeline's grasp centres and depths with a uniform random axis.
* ``best_candidate``: ``--candidates`` physics-tried candidates per object (antipodal and random,
  :func:`~stn_ros.sim.physics.grasps.sample_candidates`); an object succeeds when any holds: an upper bound.

Success of a grasp: the trial lifted and held a body through the shake; per object: the grasp assigned
to the object (the one whose centre lies on it; the pipeline's highest-quality one) lifted that object,
an object without a grasp fails. Intervals are Wilson 95 %. Writes ``physics.md``, ``physics.json`` and
pictures to ``--output``.
"""
