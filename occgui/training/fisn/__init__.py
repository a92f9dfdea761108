"""FISN's trainer (paper §3.3): pairs (:mod:`.data`), discriminators (:mod:`.discriminator`),
losses Eq. 6-9 (:mod:`.losses`) and the training loop (:mod:`.train`, ``occgui train fisn``)."""
