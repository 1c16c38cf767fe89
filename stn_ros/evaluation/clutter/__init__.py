"""``stn_evaluate clutter``: clearing a table, the clutter-removal protocol of VGN (Breyer et al., CoRL 2020) and GIGA
(Jiang et al., RSS 2021) in the project's pybullet world, on the validation meshes.

Each round: five objects, ``packed`` or ``pile`` (:mod:`stn_ros.sim.physics.clutter`), one 640x480 depth frame
(``fx = fy = 540``, the project's sensor model) per attempt from a ``top`` view or a ``side`` view 60 deg from
vertical; the method's grasp is executed by the simulated gripper; a grasp that held takes its object off the table
and the rest settle; the round ends when the table is clear, no grasp is proposed or two grasps in a row failed
(:mod:`.protocol`). Methods (:mod:`.methods`): the shipped nodes over real ROS 2 topics (their highest-quality grasp,
along its published gripper frame), the ``minAreaRect`` rule in the image, the fair rule (``minAreaRect`` of the
footprint on the table, ranked by the same GQ-CNN) and a random axis through the pipeline's grasp; each runs its own
rounds from the same initial worlds. Scored by grasp success rate (successes / attempts) and declutter rate
(successes / objects) with Wilson 95 % intervals (:mod:`.summary`); ``clutter.md``, ``clutter.json`` and
``clutter_rounds.png`` (:mod:`.report`) written by :func:`.run.evaluate_clutter`.

The meshes (random_urdfs 400-499) are the validation split: its figures are validation figures, and the published
figures of the protocol are on other objects.
"""
