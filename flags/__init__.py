"""absl flag definitions shared by the entry points (import as `from flags import x_flags`)."""
