"""Keras models, losses, metrics, input pipeline, training and evaluation for set retrieval."""
