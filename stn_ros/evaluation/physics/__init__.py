"""``stn_evaluate physics``: do the grasps hold? Judged by pybullet on the validation meshes.

On ``--num-scenes`` physics scenes of :data:`~stn_ros.sim.physics.world.VALIDATION_MESHES` (never in training
data, but they chose ``hypotheses_per_object``, the gripper range and the README's headline: its figures are
validation figures, not a test) and our procedural shapes, singulated and cluttered, each method proposes grasps
and a simulated parallel-jaw gripper tries each one once (:func:`~stn_ros.sim.physics.grasp_trial.grasp_trial`,
friction ``mu`` of the gripper, no perturbation):

* ``pipeline``: the shipped nodes as a robot runs them: each frame (``32FC1`` depth + ``CameraInfo``) is
  published over real ROS 2 topics (loopback) to ``stn_node`` -> ``grasp_quality_node`` processes with their
  shipped parameters; every crop of ``~/grasps`` is a grasp; the scene's best is the highest quality;
  ``~/best_grasp`` is recorded when published.
* ``min_area_rect``: ``cv2.minAreaRect`` of each depth proposal's mask (what a real pipeline has, not the
  true mask), closing across its shorter side; the node's gripper depth rule. The scene's pick: the
  proposal nearest the camera (the top of the pile).
* ``min_area_rect_gqcnn``: the same grasps (and trials) as ``min_area_rect``, each scored by the pipeline's GQ-CNN
  on its Dex-Net canonical crop (:func:`~.methods.gqcnn_qualities`); the scene's pick and each object's grasp are
  the highest quality, as the pipeline's. Against ``pipeline`` it isolates what the STN's crops buy over the rule's
  when both are ranked by the same GQ-CNN.
* ``random_axis``: the pipeline's grasp centres and depths with a uniform random axis.
* ``best_candidate``: ``--candidates`` physics-tried candidates per object (antipodal and random,
  :func:`~stn_ros.sim.physics.grasps.sample_candidates`); an object succeeds when any holds: an upper bound.

Success of a grasp: the trial lifted and held a body through the shake; per object: the grasp assigned to the
object (the one whose centre lies on it; for a method ranked by the GQ-CNN its highest-quality one) lifted that
object, an object without a grasp fails. Intervals are Wilson 95 %. Writes ``physics.md``, ``physics.json`` and
pictures to ``--output``.

Modules, one job each: :mod:`.methods` (how each method proposes and picks grasps), :mod:`.graph` (the shipped
nodes over ROS 2), :mod:`.trials` (the trials and their process pool), :mod:`.summary` (scoring), :mod:`.report`
(``physics.md`` and figures), :mod:`.run` (the whole evaluation).
"""
