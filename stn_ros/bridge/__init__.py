"""numpy <-> ``sensor_msgs`` codecs (Image, PointCloud2, CameraInfo) and MCAP bags: no rclpy; messages are
duck-typed."""
