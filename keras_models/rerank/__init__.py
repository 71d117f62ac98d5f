"""Re-ranking of retrieved lists (ICFRR) and list metrics with class-level relevance."""
