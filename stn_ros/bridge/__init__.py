"""numpy <-> ``sensor_msgs`` codecs (Image, PointCloud2): pure numpy, no rclpy; messages are duck-typed."""
