"""Set-retrieval models and their registry."""
