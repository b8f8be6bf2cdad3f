"""State stage: what each target confirmed, dead letters, stable ids and pass history."""
