"""The project's measurement and maintenance scripts, run from the repository root as modules::

    .venv/bin/python -m scripts.benchmark --quick
    .venv/bin/python -m scripts.fuzz --minutes 1

They import ``dan`` as the environment has it (the editable install, or the working tree, which is the
current folder) and each other through this package (:mod:`scripts._common` holds what they share);
none edits ``sys.path``.
"""
