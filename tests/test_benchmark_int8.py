"""The speed benchmark's int8 agreement table (scripts/_int8.py): top-1 per face set, and the classes seen."""

from __future__ import annotations

import numpy as np


def test_benchmark_int8_agreement_rows_count_top1_per_face_set() -> None:
    from scripts._int8 import agreement_rows

    faces = {"a": np.eye(4, dtype=np.float32), "b": np.eye(4, dtype=np.float32)[:2]}  # logits = the input
    flipped = lambda x: x[:, ::-1].copy()  # noqa: E731  top-1 differs for every face
    rows, classes = agreement_rows(
        {"onnx": lambda x: x}, {"same": ("onnx", lambda x: x), "off": ("onnx", flipped)}, faces
    )
    assert rows == [["same", "100.0%", "100.0%", "100.0%"], ["off", "0.0%", "0.0%", "0.0%"]] and classes == 4
