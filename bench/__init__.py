"""Benchmarks that print figures; run them as `python -m bench.<script>` from the repo root."""
