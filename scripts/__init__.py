"""The project's measurement and maintenance scripts, grouped by kind and run from the repository root as modules::

    .venv/bin/python -m scripts.bench.speed --quick
    .venv/bin/python -m scripts.maint.fuzz --minutes 1

- :mod:`scripts.bench`: benchmarks and experiments (speed, data pipeline, demo, detectors, predict,
  serve, training step, int8 variants, model size, ablations);
- :mod:`scripts.demos`: demonstrations and the figures of the docs (fine-tuning, valence/arousal, the
  attention figure, the demo video, the calibration figure);
- :mod:`scripts.maint`: maintenance (fuzzing, the released models' pins, the soak test, the GPU checks);
- :mod:`scripts.common`: what they share (timing and tables, face sets, photo folders, int8 files).

A kind imports ``dan`` and :mod:`scripts.common`, never another kind (``tests/test_layers.py`` checks).
The shell scripts the README and CI run (``setup.sh``, ``test.sh``, ``quickstart.sh``,
``install_browser.sh``, ``gpu_check.sh``) stay in this folder. They import ``dan`` as the environment
has it (the editable install, or the working tree, which is the current folder); none edits ``sys.path``.
"""
