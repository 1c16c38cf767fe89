"""stn_ros: Spatial Transformer Network canonicalization of object crops, with ROS 2 glue.

``stn_ros.core`` is pure compute (torch, numpy, OpenCV; no rclpy). ROS glue lives apart from it.
"""

__version__ = '0.1.0'
