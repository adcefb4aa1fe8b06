"""Fuzzing in every test run: each parser of untrusted bytes gets mutated seed files for a few seconds
(``python -m scripts.maint.fuzz`` runs longer); only the project's own one-line errors may come out."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from scripts.maint.fuzz_targets import TARGETS, mutations, seeds

BUDGET = {"image": 150, "checkpoint": 30, "rafdb": 60, "affectnet": 60, "fer2013": 40, "serve": 40}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_only_typed_errors_escape(target: str) -> None:
    assert seeds(target), f"no seed files for {target}"
    run = TARGETS[target]
    for data in seeds(target):  # the seeds pass, and first-use costs stay outside the deadline
        run(data)

    @settings(max_examples=BUDGET[target], deadline=5000, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations(target))
    def fuzz(data: bytes) -> None:
        run(data)

    fuzz()
