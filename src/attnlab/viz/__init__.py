"""Pictures of attention: one validated payload, then views (matplotlib figures, a
self-contained interactive HTML page)."""
