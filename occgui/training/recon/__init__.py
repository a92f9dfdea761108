"""``occgui train recon``: the R-Net coefficient regressor (paper §3.4), distilled from per-photo fits."""
