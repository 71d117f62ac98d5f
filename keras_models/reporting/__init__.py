"""Report figures and collages written next to evaluation results."""
