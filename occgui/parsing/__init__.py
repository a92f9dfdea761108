"""Face parsing (paper §3.2): the N_alpha U-Net (M_alpha), its label generation and training."""
