"""The speed benchmark's int8 agreement table (scripts/common/int8.py): top-1 per face set, and the classes seen."""

from __future__ import annotations

import numpy as np


def test_benchmark_int8_agreement_rows_count_top1_per_face_set() -> None:
    from scripts.common.int8 import agreement_rows

    faces = {"a": np.eye(4, dtype=np.float32), "b": np.eye(4, dtype=np.float32)[:2]}  # logits = the input
    flipped = lambda x: x[:, ::-1].copy()  # noqa: E731  top-1 differs for every face
    rows, classes = agreement_rows(
        {"onnx": lambda x: x}, {"same": ("onnx", lambda x: x), "off": ("onnx", flipped)}, faces
    )
    assert rows == [["same", "100.0%", "100.0%", "100.0%"], ["off", "0.0%", "0.0%", "0.0%"]] and classes == 4


def test_int8_variants_script_prints_one_row_per_variant(tiny_checkpoint, capsys, monkeypatch) -> None:
    from dan.export import faces
    from scripts.bench import int8_variants

    monkeypatch.setattr(int8_variants, "CALIBRATION_FACES", 16)  # 256 by default: 8 calibrate here
    args = ["--checkpoint", str(tiny_checkpoint), "--variants", "minmax8", "pct7", "--iters", "2", "--generated", "8"]
    assert faces.CALIBRATION_SEED == int8_variants.CALIBRATION_SEED
    assert int8_variants.main(args) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"minmax8", "pct7"} <= set(rows) and "CPU:" in out and "calibrated on 8 generated faces" in out
    for name in ("minmax8",):  # pct7 may fail to bin the tiny model's ranges on 8 faces: its row says so
        cells = [c.strip() for c in rows[name].split("|")[1:-1]]
        assert cells[-4].endswith("%") and float(cells[-2]) > 0 and float(cells[-1]) > 0  # all, int8 ms, float32 ms
