"""The nets: the GQ-CNN and the distorted-MNIST classifiers (the grasp STN is a core SpatialTransformer,
built by :mod:`stn_ros.training.prisms.grasp_stn`)."""
