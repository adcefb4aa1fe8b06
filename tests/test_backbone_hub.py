"""The MS-Celeb-1M ResNet-18 by name (``model.backbone_weights: msceleb``): fetched, verified and cached as the
released models are, listed by ``dan models``, refused as a checkpoint, and what the paper's recipe trains from."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import torch
import torchvision

import dan
from dan import DanError, hub
from dan.cli.main import main
from dan.models.backbone import check_torchvision_layout, resolve_backbone_weights
from dan.runtime import load_backend

pytest_plugins = ["hubserver"]  # the loopback server and the private cache: fixtures
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FILE = hub.BACKBONES["msceleb"].filename


def _closed_port_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: what a machine without network sees
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/resnet18_msceleb.pth"


def _offline(monkeypatch: pytest.MonkeyPatch) -> str:
    url = _closed_port_url()
    monkeypatch.setitem(hub.BACKBONES, "msceleb", dataclasses.replace(hub.BACKBONES["msceleb"], url=url))
    return url


def test_msceleb_is_fetched_once_verified_and_loaded(home: Path, server, payloads: dict) -> None:
    path = resolve_backbone_weights("msceleb", progress=False)
    assert path == home / FILE and path.read_bytes() == payloads["msceleb"]
    assert sorted(p.name for p in home.iterdir()) == [FILE, f"{FILE}.sha256"]  # no lock, no temporary file
    model = dan.DAN(7, 2, backbone_weights="msceleb")  # the cached file: no second request
    torch.testing.assert_close(model.backbone.conv1.weight, payloads["conv1"])
    assert server.hits == {"/msceleb.pth": 1}
    rows = hub.list_backbones()
    assert [(r["name"], r["cached"], r["state"]) for r in rows] == [
        ("msceleb", path, "verified (recorded at its first download)")
    ]


def test_a_file_of_another_layout_never_enters_the_cache(home: Path, server, monkeypatch) -> None:
    url = server.base + "/resnet.pth"  # torchvision's keys, but under model_state_dict: not the layout
    monkeypatch.setitem(hub.BACKBONES, "msceleb", dataclasses.replace(hub.BACKBONES["msceleb"], url=url))
    with pytest.raises(DanError) as err:
        dan.DAN(7, 2, backbone_weights="msceleb")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"cannot download msceleb from {url}: ")
    assert (
        "the downloaded file is not the expected checkpoint: not a state dict of tensors (expected {'state_dict'" in msg
    )
    assert msg.endswith(f"; download it yourself and save it as {home / FILE}")
    assert sorted(p.name for p in home.iterdir()) == []


def test_the_layout_check_reads_every_key_and_shape(tmp_path: Path) -> None:
    state = torchvision.models.resnet18().state_dict()
    counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": counters}, tmp_path / "old.pth")  # an old file without BatchNorm counters: as torch
    check_torchvision_layout(tmp_path / "old.pth")
    bad = {**state, "layer3.1.conv2.weight": torch.zeros(256, 256, 1, 1)}
    torch.save({"state_dict": bad}, tmp_path / "bad.pth")
    with pytest.raises(DanError, match=r"1 tensors of wrong shape \(e.g. layer3.1.conv2.weight: \(256, 256, 1, 1\)"):
        check_torchvision_layout(tmp_path / "bad.pth")
    no_fc = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save({"state_dict": no_fc}, tmp_path / "nofc.pth")
    with pytest.raises(DanError, match=r"2 missing \(e.g. fc.bias\)"):
        check_torchvision_layout(tmp_path / "nofc.pth")
    model = dan.DAN(7, 2, backbone_weights=str(tmp_path / "old.pth"))  # a path still works, counters kept
    torch.testing.assert_close(model.backbone.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_a_hand_placed_file_is_used_offline_and_recorded(
    home: Path, payloads: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _offline(monkeypatch)
    home.mkdir(parents=True)
    (home / FILE).write_bytes(payloads["msceleb"])  # saved by hand where the offline message said
    model = dan.DAN(7, 2, backbone_weights="msceleb")
    torch.testing.assert_close(model.backbone.conv1.weight, payloads["conv1"])
    assert "passed the layout check" in capsys.readouterr().err and (home / f"{FILE}.sha256").is_file()


def test_msceleb_is_no_checkpoint(home: Path, server, capsys: pytest.CaptureFixture) -> None:
    want = "msceleb: a released backbone (resnet18_msceleb.pth: resnet18 weights), not a DAN model"
    for load in (dan.load_model, load_backend):
        with pytest.raises(DanError, match=r"^msceleb: a released backbone .* model.backbone_weights: msceleb"):
            load("msceleb")
    assert main(["info", "--checkpoint", "msceleb"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and want in err and "Traceback" not in err
    assert server.hits == {}


def test_dan_models_lists_and_downloads_the_backbone(home: Path, server, capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "backbone weights (model.backbone_weights: NAME" in out
    assert "msceleb     resnet18  not cached\n" in out and hub.BACKBONES["msceleb"].url in out
    assert main(["models", "download", "msceleb", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"msceleb: {home / FILE}"
    assert main(["models", "download", "msceleb", "--quiet", "--force"]) == 0  # fetched again, same bytes
    assert server.hits == {"/msceleb.pth": 2}
    assert main(["models"]) == 0
    assert "msceleb     resnet18  verified (recorded at its first download)\n" in capsys.readouterr().out


def test_the_pin_script_pins_the_backbone_too(home: Path, server, payloads: dict, capsys) -> None:
    import hashlib
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "maint" / "pin_releases.py"
    spec = importlib.util.spec_from_file_location("pin_releases", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["msceleb", "--quiet"]) == 0
    digest = hashlib.sha256(payloads["msceleb"]).hexdigest()
    assert capsys.readouterr().out.startswith(f'msceleb: sha256="{digest}",  # ')
    assert not home.exists() or list(home.iterdir()) == []  # fetched into a temporary folder


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", str(out), "--per-class", "4", "--size", "48", "--seed", "1"]) == 0
    return out


TINY = [  # the RAF-DB recipe made tiny: a few steps of small images on the CPU
    *("--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0"),
    *("--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu"),
    *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
]


def test_the_rafdb_recipe_offline_stops_before_any_work(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    url = _offline(monkeypatch)
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)  # an empty data root: reading its lists would fail with another message
    monkeypatch.chdir(work)
    assert main(["fit", "-c", str(CONFIGS / "rafdb.yaml"), "--data.root", "data"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("dan fit")]
    assert err == [
        f"dan fit: error: cannot download msceleb from {url}: no connection (offline, or the server cannot be "
        f"reached: [Errno 111] Connection refused); download it yourself and save it as {home / FILE}"
    ]
    assert sorted(os.listdir(work)) == ["data"]  # no run folder
    assert not home.exists() or sorted(p.name for p in home.iterdir()) == []


def test_the_rafdb_recipe_trains_from_the_fetched_backbone(
    home: Path, server, faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", str(CONFIGS / "rafdb.yaml"), "--data.root", str(faces), *TINY]) == 0
    assert server.hits == {"/msceleb.pth": 1} and (home / FILE).is_file()
    last = tmp_path / "runs" / "rafdb" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 2 and state["hyper_parameters"]["backbone_weights"] == "msceleb"
