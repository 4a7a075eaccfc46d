"""The scheduler: the loop around core/ that loads DAGs, creates runs and dispatches work."""
