"""Loading checkpoints: reference-layout files, this project's files, and bad or unsafe files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torchvision

import dan
from dan import DAN, DanError, Preprocessing, load_model, save_model
from dan.models.metadata import ModelMetadata
from dan.models.reference import PlainDAN, randomize

# A few entries of the reference checkpoints' layout (the facts file), for the tests' own check.
REFERENCE_SHAPES = {
    "features.0.weight": (64, 3, 7, 7),
    "features.4.0.conv1.weight": (64, 64, 3, 3),
    "features.7.1.bn2.running_var": (512,),
    "cat_head0.sa.conv1x1.0.weight": (256, 512, 1, 1),
    "cat_head3.sa.conv_1x3.0.weight": (512, 256, 1, 3),
    "cat_head2.ca.attention.0.weight": (32, 512),
    "cat_head1.ca.attention.3.weight": (512, 32),
    "fc.weight": (7, 512),
    "bn.running_mean": (7,),
}


def _reference_file(tmp_path: Path, num_classes: int = 7, seed: int = 0, prefix: str = "") -> tuple[Path, PlainDAN]:
    plain = randomize(PlainDAN(num_classes, 4), seed).eval()
    state = {prefix + k: v for k, v in plain.state_dict().items()}
    path = tmp_path / f"reference_{num_classes}.pth"
    torch.save({"iter": 21, "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}}, path)
    return path, plain


def test_plain_layout_is_the_reference_layout() -> None:
    state = PlainDAN(7, 4).state_dict()
    assert len(state) == 275
    for key, shape in REFERENCE_SHAPES.items():
        assert tuple(state[key].shape) == shape


def test_reference_checkpoint_loads_and_matches(tmp_path: Path) -> None:
    path, plain = _reference_file(tmp_path)
    model = load_model(path, labels="rafdb")
    assert not model.training
    assert model.labels == dan.LABEL_SETS["rafdb"]
    assert sum(p.numel() for p in model.parameters()) == 19_723_733
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        logits, feats, heads = plain(x)
        out = model(x)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5 * float(logits.abs().max()))
    torch.testing.assert_close(out.heads, heads, rtol=1e-5, atol=1e-5 * float(heads.abs().max()))
    torch.testing.assert_close(out.features, feats, rtol=1e-5, atol=1e-5 * float(feats.abs().max()))


def test_reference_8_class_defaults_to_affectnet8_and_dataparallel_prefix(tmp_path: Path) -> None:
    path, _ = _reference_file(tmp_path, num_classes=8, prefix="module.")
    model = load_model(path)
    assert model.labels == dan.LABEL_SETS["affectnet8"]


def test_reference_7_class_needs_labels(tmp_path: Path) -> None:
    path, _ = _reference_file(tmp_path)
    with pytest.raises(DanError, match="rafdb.*affectnet7.*fer2013") as err:
        load_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DanError, match="unknown label set 'raf'"):
        load_model(path, labels="raf")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_own_checkpoint_roundtrip(tmp_path: Path, suffix: str) -> None:
    model = randomize(DAN(num_classes=7, num_heads=2), 1).eval()
    model.labels = dan.LABEL_SETS["fer2013"]
    model.preprocessing = Preprocessing(input_size=112)
    path = save_model(model, tmp_path / f"m{suffix}")
    assert not list(tmp_path.glob("*.tmp"))
    loaded = load_model(path)
    assert loaded.labels == dan.LABEL_SETS["fer2013"] and loaded.num_heads == 2
    assert loaded.preprocessing == Preprocessing(input_size=112)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert load_model(path, labels="rafdb").labels == dan.LABEL_SETS["rafdb"]


def test_lightning_style_checkpoint(tmp_path: Path) -> None:
    model = DAN(num_classes=8, num_heads=1).eval()
    model.labels = dan.LABEL_SETS["affectnet8"]
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["affinity.centers"] = torch.zeros(8, 512)
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "state_dict": state, "dan": ModelMetadata.of_model(model).to_dict()}, path)
    assert load_model(path).labels == dan.LABEL_SETS["affectnet8"]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"fc.weight": torch.zeros(7, 512)}, "x": _Exploit(marker)}, path)
    with pytest.raises(DanError, match="refused") as err:
        load_model(path, labels="rafdb")
    assert not marker.exists()
    assert str(path) in str(err.value)
    # and the same object really would have run code through a plain unpickler
    pickle.loads(pickle.dumps(_Exploit(marker)))
    assert marker.exists()


def test_bad_files_fail_with_one_line(tmp_path: Path) -> None:
    good, _ = _reference_file(tmp_path)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    other = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    cases = {
        tmp_path / "missing.pth": "no such file",
        truncated: "not a readable",
        text: "not a readable",
        other: "not a DAN checkpoint",
    }
    for path, message in cases.items():
        with pytest.raises(DanError, match=message) as err:
            load_model(path, labels="rafdb")
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_that_does_not_fit(tmp_path: Path) -> None:
    model = DAN(num_classes=7, num_heads=2)
    model.labels = dan.LABEL_SETS["rafdb"]
    path = save_model(model, tmp_path / "m.pt")
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["fc.weight"] = torch.zeros(7, 100)
    torch.save(blob, path)
    with pytest.raises(DanError, match=r"does not fit the model: 1 tensors of wrong shape \(e.g. fc.weight"):
        load_model(path)


def test_msceleb_backbone_file(tmp_path: Path) -> None:
    tv = torchvision.models.resnet18()
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": tv.state_dict()}, path)
    model = DAN(backbone_weights=str(path))
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)
    torch.testing.assert_close(model.backbone.bn1.running_var, tv.bn1.running_var)


def test_backbone_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DanError, match="resnet18_msceleb.pth"):
        DAN(backbone_weights=str(tmp_path / "resnet18_msceleb.pth"))
    wrong = tmp_path / "r34.pth"
    torch.save({"state_dict": torchvision.models.resnet34().state_dict()}, wrong)
    with pytest.raises(DanError, match="does not fit the backbone"):
        DAN(backbone_weights=str(wrong))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants

    # read when huggingface_hub is first imported, which may have happened already: without this the
    # test would wait out the network's timeouts instead of failing offline at once
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DanError, match="pretrained weights"):
        DAN(backbone_weights="timm")
