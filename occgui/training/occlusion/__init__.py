"""Synthetic occlusion: the occluder library, its placement and compositing, and the procedural hand."""
