"""ROS message adapters (codecs are pure numpy; node code lives elsewhere)."""
