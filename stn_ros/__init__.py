"""stn_ros: Spatial Transformer Network canonicalization of object crops for grasping, on ROS 2.

Layers, imports running one way (``test/test_layers.py``): ``core`` (families, STN, crops, samplers) <
``models`` (nets) < ``bridge`` (message codecs) < ``perception`` (what the nodes compute) < ``sim`` (the prism
and physics worlds) < {``training``, ``ros`` (the only rclpy)} < ``evaluation`` < ``apps`` (the commands).
Everything below ``training`` and ``ros`` runs without rclpy.
"""

__version__ = '0.1.0'
