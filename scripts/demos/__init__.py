"""Demonstrations and the docs' figures (``python -m scripts.demos.<name>``, ``bash scripts/demos/<name>.sh``)."""
