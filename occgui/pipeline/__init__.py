"""The headless pipeline: typed stage results, stage functions, backends and the cached runner."""
