"""Conditional search: Backward Search on item features and its distilled student."""
