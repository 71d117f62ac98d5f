"""Contrastive losses for set retrieval."""
