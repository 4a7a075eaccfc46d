"""Executors: where attempts run. ``inline`` (this process) and ``local`` (worker pool)."""
