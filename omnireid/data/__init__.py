"""Data: dataset parsers (``datasets``), image files (``images``), the torch dataset over
samples (``image_dataset``), identity/domain samplers, transforms, and the synthetic world."""
