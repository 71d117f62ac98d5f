"""Retrieval metric maths (pure TF functions) and their Keras wrappers."""
