"""Training from packed data: the same batches as the original layout, and exact resume after SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dan.cli.main import main
from dan.data.datamodule import FERDataModule
from dan.data.pack import pack_dataset

pytest.importorskip("litdata")

CONF = Path(__file__).parent / "conf" / "tiny.yaml"
COMMON = [
    "--trainer.max_epochs",
    "2",
    "--trainer.deterministic",
    "true",
    "--data.batch_size",
    "4",
]  # tiny.yaml: 0 workers


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated set with valence/arousal, and its packed copy."""
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", str(out), "--per-class", "5", "--size", "48", "--seed", "3", "--workers", "0"]) == 0
    packed = out.with_name("packed")
    pack_dataset("rafdb", out, packed, chunk_bytes="20KB", say=lambda _: None)  # several chunks a split
    return out, packed


def _batches(dm: FERDataModule, loader: str) -> list[dict[str, torch.Tensor]]:
    return list(getattr(dm, loader)())


@pytest.mark.parametrize("workers", [0, 2])
def test_packed_batches_equal_the_original_layouts(synth: tuple[Path, Path], workers: int) -> None:
    original, packed = synth
    kwargs = {"image_size": 48, "batch_size": 4, "num_workers": workers, "seed": 7, "augment": "rafdb"}
    a = FERDataModule(format="rafdb", root=str(original), **kwargs)
    b = FERDataModule(format="packed", root=str(packed), **kwargs)
    assert (a.label_names, a.preprocessing, a.has_va) == (b.label_names, b.preprocessing, b.has_va)
    a.setup("fit")
    b.setup("fit")
    for loader in ("train_dataloader", "val_dataloader"):
        want, got = _batches(a, loader), _batches(b, loader)
        assert len(want) == len(got) > 0
        for x, y in zip(want, got, strict=True):
            assert x.keys() == y.keys() and "va" in x
            for key in x:  # uint8 faces after the same augmentation, labels, erasing boxes, valence/arousal
                torch.testing.assert_close(y[key], x[key], rtol=0, atol=0, equal_nan=True, msg=f"{loader} {key}")


def _fit(cwd: Path, data: Path, *extra: str) -> int:
    args = ["fit", "-c", str(CONF), "--data.format", "packed", "--data.root", str(data)]
    return main([*args, "--trainer.default_root_dir", str(cwd), *COMMON, *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True, map_location="cpu")["state_dict"]


@pytest.mark.slow
def test_sigterm_on_packed_data_then_resume_ends_with_the_uninterrupted_weights(
    synth: tuple[Path, Path], tmp_path: Path, monkeypatch
) -> None:
    _, packed = synth
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for d in (whole, cut):
        d.mkdir()
    monkeypatch.chdir(whole)
    assert _fit(whole, packed) == 0
    reference = _weights(whole / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt")

    monkeypatch.chdir(cut)  # a process of its own, preempted mid-epoch
    args = ["fit", "-c", str(CONF), "--data.format", "packed", "--data.root", str(packed)]
    args += ["--trainer.default_root_dir", str(cut), *COMMON]
    args += ["--trainer.callbacks+=training_helpers.SignalAt", "--trainer.callbacks.step", "5"]
    args += ["--trainer.callbacks.signum", str(int(signal.SIGTERM))]
    code = "import sys; from dan.cli.main import main; sys.exit(main(sys.argv[1:]))"
    path = os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1])])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=cut, env=env, capture_output=True, text=True)
    last = cut / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    assert run.returncode == 143, run.stderr[-2000:]
    assert torch.load(last, weights_only=True)["global_step"] == 6
    assert _fit(cut, packed, "--ckpt_path", str(last)) == 0
    resumed = _weights(cut / "runs" / "tiny" / "version_1" / "checkpoints" / "last.ckpt")
    assert resumed.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=0, msg=key)
