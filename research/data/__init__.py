"""Data sets (tfds builders and loaders) and on-device preprocessing."""
