"""The 68 iBUG 300-W landmarks Z_lmk (paper §3.1): backends, index groups and the 478->68 map."""
