"""Evaluation suite: measurements of the pipeline's stages against baselines (``occgui eval``)."""
