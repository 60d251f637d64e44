"""Transformer encoder-decoder on sequence-to-sequence tasks."""
