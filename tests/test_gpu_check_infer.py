"""The GPU check's inference rows (scripts/maint/gpu_check_infer.py) in their tiny CPU mode: every row is measured,
each says where the model ran, and a backend that cannot run is one failed row, not a crash."""

from __future__ import annotations

import json

import pytest

from scripts.maint import gpu_check_infer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_cpu_run_gives_every_row(tmp_path, capsys) -> None:
    out = tmp_path / "rows.json"
    argv = ["--device", "cpu", "--model", "tiny", "--images", "2", "--eval-per-class", "5", "--workers", "1"]
    argv += ["--batch-size", "2", "--eval-batch-size", "4", "--eval-workers", "0", "--work", str(tmp_path / "w")]
    assert gpu_check_infer.main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["backend"], r["row"]) for r in rows] == [
        ("torch", "predict-seq"),
        ("torch", "predict w1"),
        ("torch", "evaluate"),
        ("onnx", "predict w1"),
        ("onnx", "evaluate"),
    ]
    assert all(r["per_s"] > 0 and r["device"].startswith("cpu") for r in rows)
    evaluated = {r["items"] for r in rows if r["row"] == "evaluate"}
    found = {r["items"] for r in rows if r["row"].startswith("predict")}
    assert len(evaluated) == 1 and evaluated.pop() > 0 and len(found) == 1  # the same faces on every path
    assert "real photos, YuNet" in rows[0]["what"] and "| onnx | evaluate |" in capsys.readouterr().out


def test_a_backend_that_cannot_run_is_a_failed_row(tmp_path, monkeypatch) -> None:
    def no_export(*args, **kwargs):
        raise ImportError("onnxscript is not installed")

    monkeypatch.setattr("dan.export.onnx.export_onnx", no_export)
    argv = ["--device", "cpu", "--model", "tiny", "--images", "1", "--eval-per-class", "1", "--workers", "1"]
    argv += ["--backends", "onnx", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "rows.json")]
    assert gpu_check_infer.main(argv) == 1
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert rows == [{"backend": "onnx", "row": "all", "error": "ImportError: onnxscript is not installed"}]
