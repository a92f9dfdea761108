"""Training of N_alpha, the parsing U-Net (paper §3.2): clean-set cache, dataset, trainer, packer, evaluation."""
