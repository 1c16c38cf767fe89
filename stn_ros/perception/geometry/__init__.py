"""Geometry both nodes use: pinhole back-projection and metric ROIs, rigid transforms between frames."""
