"""Training of the occlusion-aware landmark refiner (paper §3.1)."""
