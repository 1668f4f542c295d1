"""The composition root: builds every adapter once per process from settings (filled in by the foundation)."""
