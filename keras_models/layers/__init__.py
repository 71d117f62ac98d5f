"""Attention and set layers."""
