"""Flax (linen) models, one family per module."""
