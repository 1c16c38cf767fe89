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

By camera tilt (``--tilt-bands 0-10,10-30,30-45,45-60``): ``--num-scenes`` scenes per band, the same seeds in every
band, the camera's tilt drawn in the band (any azimuth and roll, 0.6-0.8 m along its optical axis), every method
above on every band, plus

* ``min_area_rect_rectified``, the fair rule for an oblique camera (:mod:`.rectified_rule`): ``minAreaRect`` of each
  proposal's footprint on the table fitted from the depth frame, approaching along the table's normal, ranked by the
  same GQ-CNN on the crop a straight-down view sees;

and writes ``physics_tilt.md`` (one table with a band column), ``physics_tilt.json`` and pictures instead of
``physics.md``. A method's grasps with gripper frames are tried along them (the pipeline's when ``~/grasps`` carries
``qx, qy, qz, qw``; the fair rule's); the others approach along the optical axis.

Modules, one job each: :mod:`.methods` (how each method proposes and picks grasps), :mod:`.rectified_rule` (the fair
rule's geometry), :mod:`.graph` (the shipped nodes over ROS 2), :mod:`.trials` (the trials and their process pool),
:mod:`.summary` (scoring), :mod:`.report` (``physics.md`` and figures), :mod:`.tilt_report` (``physics_tilt.md``),
:mod:`.bands` (``--tilt-bands``), :mod:`.run` (the whole evaluation).
"""
