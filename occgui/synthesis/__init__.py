"""I_out: the de-occluded face (paper §3.3) — the default synthesis and its baselines."""
