"""The data: datasets and their loaders (datasets), the per-image augmentation (augment), corrupted validation sets
(corruptions)."""
