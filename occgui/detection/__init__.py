"""Face detection and the similarity-aligned face crop (stage ``detect``)."""
