"""Benchmarks and experiments: each prints a machine header and Markdown tables (``python -m scripts.bench.<name>``)."""
