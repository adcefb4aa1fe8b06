"""Maintenance: fuzzing, the models' pins, the soak test, the GPU checks (``python -m scripts.maint.<name>``)."""
