"""Running one attempt of one task instance and reporting what happened."""
