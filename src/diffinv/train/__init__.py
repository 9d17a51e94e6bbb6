"""Training entry points (``python -m diffinv.train.<name>``)."""
