"""stn_node's compute: a decoded frame, its crop sources, the canonicalizer, the transforms record, its
per-frame steps."""
