"""Evaluation reports: the tables, the figures and collages beside evaluation results."""
