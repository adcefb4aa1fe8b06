"""Fine-tuning from a trained DAN (``model.init_from``): what is loaded, the classes kept by name, the affinity
centres, what the checkpoint records, released names through the cache, and one-line refusals."""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
import yaml

import dan
from dan.cli.main import main
from dan.data.folder import folder_label_names
from dan.errors import DanError, MissingLabelsError
from dan.imaging import list_images, read_image
from dan.models import DAN, convert_reference_state_dict, save_model
from dan.models.metadata import tensor_checksum
from dan.models.reference import PlainDAN
from dan.models.transfer import CLASS_ROWS
from dan.preprocess import Preprocessing, prepare_face
from dan.training.module import DANModule
from dan.vocab import LABEL_SETS, canonical_class_name, match_classes

pytest_plugins = ["hubserver"]  # the loopback server and the private cache: fixtures

RAFDB = LABEL_SETS["rafdb"]
# the synth's classes under the names people give their folders; contempt is new to a RAF-DB model
FOLDERS = {
    "surprise": "surprised",
    "fear": "scared",
    "disgust": "Disgusted",
    "happiness": "happy",
    "sadness": "sad",
    "anger": "angry",
    "neutral": "neutral",
}
RECORD = Preprocessing(input_size=48)


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-class folder set of generated faces: ``dan synth``'s seven classes in folders named as people
    name them, and a stand-in ``contempt`` class (neutral faces mirrored and turned grey)."""
    tmp = tmp_path_factory.mktemp("faces")
    synth, root = tmp / "synth", tmp / "folders"
    assert main(["synth", str(synth), "--per-class", "16", "--size", "48", "--seed", "5", "--workers", "1"]) == 0
    words = (synth / "EmoLabel" / "list_patition_label.txt").read_text().split()
    for name, label in zip(words[::2], words[1::2]):
        split = "train" if name.startswith("train") else "val"
        image = synth / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg")
        cls = RAFDB[int(label) - 1]
        (root / split / FOLDERS[cls]).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, root / split / FOLDERS[cls] / name)
        if cls == "neutral":
            grey = cv2.cvtColor(cv2.flip(cv2.imread(str(image)), 1), cv2.COLOR_BGR2GRAY)
            (root / split / "contempt").mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / split / "contempt" / name), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    return root


def _images(root: Path, split: str, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, 48, 48), labels (N,) indexing ``names``) of a folder split, read without the data layer."""
    xs, ys = [], []
    for folder in sorted((root / split).iterdir()):
        for path in list_images(folder):
            xs.append(prepare_face(read_image(path), RECORD))
            ys.append(names.index(canonical_class_name(folder.name)))
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys)


@pytest.fixture(scope="module")
def source(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7-class RAF-DB-order DAN (2 heads) that knows the training faces of its seven classes.

    Training one for real takes minutes, so its classifier is fitted in closed form (ridge regression on
    the random network's fused head features), and its BatchNorm1d gets distinct per-class entries: what
    the tests check is that a fine-tuned model keeps what its source knows.
    """
    torch.manual_seed(0)
    model = DAN(7, 2).eval()
    x, y = _images(faces, "train", RAFDB + ("contempt",))
    x, y = x[y < 7], y[y < 7]
    with torch.no_grad():
        z = torch.log_softmax(model.heads(model.forward_features(x)), 1).sum(1)  # (N, C)
        mu, sd = z.mean(0), z.std(0).clamp_min(0.1 * z.std(0).mean().item())  # nearly constant ones kept small
        a = torch.cat([(z - mu) / sd, torch.ones(len(z), 1)], 1)  # (N, C + 1)
        w = torch.linalg.solve(a.T @ a + 10 * torch.eye(a.shape[1]), a.T @ torch.eye(7)[y])  # (C + 1, 7)
        model.fc.weight.copy_((w[:-1] / sd[:, None]).T)
        model.fc.bias.copy_(w[-1] - (mu / sd) @ w[:-1])
        model.bn.weight.copy_(1 + torch.rand(7))
        model.bn.bias.copy_(0.01 * torch.randn(7))
        model.bn.running_var.copy_(1 + torch.rand(7))
    model.labels, model.preprocessing = RAFDB, RECORD
    return save_model(model, tmp_path_factory.mktemp("source") / "source.pt")


def _module(labels: tuple[str, ...], **options) -> DANModule:
    options.setdefault("num_heads", 2)
    return DANModule(num_classes=len(labels), label_names=list(labels), preprocessing={"input_size": 48}, **options)


def test_classes_match_by_canonical_name() -> None:
    m = match_classes(RAFDB, ("happy", "Sad", "contempt", "neutral", "Happiness"))
    assert m.pairs == ((3, 0), (4, 1), (6, 3)) and m.shared == ("happy", "Sad", "neutral")
    assert m.target_only == ("contempt", "Happiness")  # the second name of one class stays unmatched
    assert m.source_only == ("surprise", "fear", "disgust", "anger")
    assert m.positions("source") == (-1, -1, -1, 0, 1, -1, 2) and m.positions("target") == (0, 1, -1, 2, -1)


def test_a_7_class_model_starts_an_8_class_one_above_chance(faces: Path, source: Path, capsys) -> None:
    labels = folder_label_names(faces)
    assert labels == LABEL_SETS["affectnet8"]  # the folder names mapped to the canonical ones, contempt last
    torch.manual_seed(0)  # the fresh contempt row
    module = _module(labels)
    x, y = _images(faces, "train", labels)
    shared = y != labels.index("contempt")
    with torch.no_grad():
        scratch = module.model.eval()(x).logits.argmax(1)
    report = module.start_from(str(source))
    out = capsys.readouterr().out
    assert "kept classes (7): neutral, happiness, sadness, surprise, fear, disgust, anger" in out
    assert "new classes (1): contempt" in out and "dropped classes (0): none" in out
    assert [j for _, j in report.match.pairs] == list(range(7)) and report.match.target_only == ("contempt",)
    src, own = torch.load(source, weights_only=True)["state_dict"], module.model.state_dict()
    for i, j in report.match.pairs:  # the shared classes' rows, bit for bit
        assert canonical_class_name(RAFDB[i]) == canonical_class_name(labels[j])
        name = labels[j]
        for key in CLASS_ROWS:
            assert torch.equal(own[key][j], src[key][i]), (key, name)
    assert all(torch.equal(own[k], src[k]) for k in own if k not in CLASS_ROWS)  # every other tensor whole
    with torch.no_grad():
        logits = module.model.eval()(x).logits
        theirs = dan.load_model(source)(x).logits
    order = [RAFDB.index(n) for n in labels[:7]]
    assert torch.allclose(logits[:, :7], theirs[:, order], atol=1e-3)  # the source's scores (summation order aside)
    before = (scratch[shared] == y[shared]).float().mean().item()
    after = (logits.argmax(1)[shared] == y[shared]).float().mean().item()
    assert after > 0.5 > 3 / 8 > before  # chance is 1/8 (1/7 among the shared classes)


def _lightning_checkpoint(module: DANModule, path: Path) -> Path:
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def test_affinity_centres_and_the_record_of_the_start(source: Path, tmp_path: Path, capsys) -> None:
    seven = _module(RAFDB, init_from=str(source))
    seven.start_from(str(source))
    first = _lightning_checkpoint(seven, tmp_path / "first.ckpt")
    eight = _module(LABEL_SETS["affectnet8"], affinity_centres=9)
    fresh = eight.affinity.centers.detach().clone()
    report = eight.start_from(str(first))
    assert report.centres == "7 of 9 kept from the source, the rest start fresh"
    assert "affinity centres: 7 of 9 kept" in capsys.readouterr().out
    for i, j in report.match.pairs:
        assert torch.equal(eight.affinity.centers[j], seven.affinity.centers[i])
    assert torch.equal(eight.affinity.centers[7:], fresh[7:])  # contempt and the spare centre
    assert _module(RAFDB).start_from(str(source)).centres.startswith("the source has none")  # a .pt file
    # the checkpoint says what the run started from: the spec as typed and the source's weights checksum
    second = _lightning_checkpoint(eight, tmp_path / "second.ckpt")
    stored = torch.load(second, weights_only=True)["dan"]["started_from"]
    first_meta = torch.load(first, weights_only=True)["dan"]
    assert stored == {"spec": str(first), "checksum": first_meta["checksum"], "labels": list(RAFDB)}
    assert first_meta["started_from"]["checksum"] == torch.load(source, weights_only=True)["dan"]["checksum"]
    assert dan.load_model(second).started_from == stored
    assert main(["info", "--checkpoint", str(second)]) == 0
    assert f"started:    from {first} (sha256:" in capsys.readouterr().out
    # a run resumed from its checkpoint keeps its record and does not start over from the source
    resumed = _module(LABEL_SETS["affectnet8"], init_from=str(tmp_path / "gone.pt"))
    with pytest.raises(DanError, match="gone.pt: no such file"):
        resumed.on_fit_start()
    resumed.on_load_checkpoint(torch.load(second, weights_only=True))
    resumed.on_fit_start()  # the checkpoint's weights win: the missing source is not read
    assert resumed.model.started_from == stored


def test_a_released_name_comes_through_the_cache(home: Path, server, payloads: dict, monkeypatch, capsys) -> None:
    module = _module(LABEL_SETS["affectnet8"], num_heads=4)
    report = module.start_from("rafdb")
    assert server.hits == {"/good7.pth": 1} and (home / dan.hub.RELEASED["rafdb"].filename).is_file()
    assert len(report.match.pairs) == 7 and report.match.target_only == ("contempt",)
    assert report.centres.startswith("the source has none")
    reference = torch.load(io.BytesIO(payloads["good7"]), weights_only=True)["model_state_dict"]
    converted = convert_reference_state_dict(reference)
    assert module.model.started_from == {"spec": "rafdb", "checksum": tensor_checksum(converted), "labels": list(RAFDB)}
    assert torch.equal(module.model.fc.weight[1], converted["fc.weight"][3])  # happiness: rafdb 3 -> affectnet8 1
    assert "init_from rafdb: " in capsys.readouterr().out
    _module(LABEL_SETS["affectnet8"], num_heads=4).start_from("rafdb")
    assert server.hits == {"/good7.pth": 1}  # the cached file, checked against its recorded SHA-256
    pinned = dataclasses.replace(dan.hub.RELEASED["affectnet7"], url=server.base + "/good7.pth", sha256="0" * 64)
    monkeypatch.setitem(dan.hub.RELEASED, "affectnet7", pinned)
    with pytest.raises(DanError) as err:
        _module(LABEL_SETS["affectnet7"], num_heads=4).start_from("affectnet7")
    assert "SHA-256" in str(err.value) and "\n" not in str(err.value)


def test_what_cannot_start_a_model_is_one_line(source: Path, tmp_path: Path) -> None:
    module = _module(RAFDB)
    torch.save({"state_dict": torchvision.models.resnet18().state_dict()}, tmp_path / "resnet.pth")
    cases = {
        str(tmp_path / "missing.pt"): "missing.pt: no such file",
        str(tmp_path / "resnet.pth"): "resnet.pth: not a DAN checkpoint",
        "rafbd": "rafbd: no such file, and not a released model name",
    }
    for spec, expected in cases.items():
        with pytest.raises(DanError) as err:
            module.start_from(spec)
        assert expected in str(err.value) and "\n" not in str(err.value), spec
    with pytest.raises(DanError) as err:  # another number of heads: more than the classes differ
        _module(RAFDB, num_heads=4).start_from(str(source))
    msg = str(err.value)
    assert "does not fit this model outside the classifier" in msg and "2 dan heads" in msg and "\n" not in msg
    # a 7-class reference file names no classes: the option to give them
    reference = tmp_path / "reference.pth"
    torch.save({"iter": 1, "model_state_dict": PlainDAN(7, 4).state_dict()}, reference)
    with pytest.raises(MissingLabelsError, match="pass --model.init_from_labels one of: rafdb"):
        _module(RAFDB, num_heads=4).start_from(str(reference))
    report = _module(RAFDB, num_heads=4).start_from(str(reference), labels="affectnet7")
    assert list(report.match.pairs[:2]) == [(3, 0), (4, 1)]  # surprise, fear: affectnet7 order


TINY = Path(__file__).parent / "conf" / "tiny.yaml"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_finetune_recipe_resolves(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["fit", "-c", str(CONFIGS / "finetune.yaml"), "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    model, data = config["model"], config["data"]
    assert (model["init_from"], model["freeze"], model["backbone_lr_scale"]) == ("rafdb", 1, 0.1)
    assert model["backbone_weights"] is None and model["num_heads"] == 4 and model["backbone"] == "resnet18"
    assert (data["format"], data["image_size"]) == ("folder", 224)
    assert config["trainer"]["logger"][0]["init_args"]["name"] == "finetune"


def test_dan_fit_fine_tunes_from_a_file(faces: Path, source: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    fit = ["fit", "-c", str(TINY), "--data.format", "folder", "--data.root", str(faces), "--data.augment", "flip"]
    fit += ["--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1"]
    assert main([*fit, "--model.init_from", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.pt: no such file" in err and "Traceback" not in err
    options = ["--model.init_from", str(source), "--model.freeze", "1", "--model.backbone_lr_scale", "0.1"]
    assert main([*fit, *options, "--trainer.limit_train_batches", "3", "--lr_monitor.logging_interval", "step"]) == 0
    out = capsys.readouterr().out
    assert f"init_from {source}: " in out and "kept classes (7): " in out and "new classes (1): contempt" in out
    run = sorted((tmp_path / "runs" / "tiny").iterdir())[-1]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    src = torch.load(source, weights_only=True)
    assert ckpt["dan"]["started_from"] == {
        "spec": str(source),
        "checksum": src["dan"]["checksum"],
        "labels": list(RAFDB),
    }
    assert ckpt["dan"]["labels"] == list(LABEL_SETS["affectnet8"])
    state = ckpt["state_dict"]
    for key in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"):  # the frozen stem
        assert torch.equal(state[f"model.backbone.{key}"], src["state_dict"][f"backbone.{key}"]), key
    assert not torch.equal(
        state["model.backbone.layer1.0.conv1.weight"], src["state_dict"]["backbone.layer1.0.conv1.weight"]
    )
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("lr-Adam/backbone")]
    assert len(rows) == 3
    for r in rows:  # tiny.yaml's Adam 1e-3: the backbone at a tenth
        assert float(r["lr-Adam/backbone"]) == pytest.approx(0.1 * float(r["lr-Adam/head"])) == pytest.approx(1e-4)


def test_the_demo_script_relabels_generated_faces_into_another_label_set(faces: Path, tmp_path: Path) -> None:
    from scripts.demos import finetune as demo

    counts = demo.relabel(faces.parent / "synth", tmp_path / "target")
    assert folder_label_names(tmp_path / "target") == (
        "neutral",
        "happiness",
        "sadness",
        "surprise",
        "anger",
        "contempt",
    )
    assert counts == {f"{s}/{c}": n for s, n in (("train", 13), ("test", 3)) for c in demo.RELABEL.values() if c}
    disgust = sorted(p.name for p in (faces / "train" / "Disgusted").iterdir())
    assert sorted(p.name for p in (tmp_path / "target" / "train" / "contempt").iterdir()) == disgust
