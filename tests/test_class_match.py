"""One class matcher (:func:`dan.vocab.match_classes`): ``dan evaluate`` and ``model.init_from`` pair a model's
classes with a data set's by the same canonical names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dan
from dan.data.folder import folder_label_names
from dan.training.module import DANModule
from dan.vocab import canonical_class_name, match_classes

import fakedata as fd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_canonical_names_ignore_case_spaces_and_synonyms() -> None:
    assert {canonical_class_name(n) for n in ("happy", "Happiness", " HAPPY ", "joy")} == {"happiness"}
    assert canonical_class_name("Angry") == "anger" and canonical_class_name("Sad-Face") == "sad_face"
    m = match_classes(("Happy", "anger", "sadness"), ("happiness", "Angry", "contempt"))
    assert m.pairs == ((0, 0), (1, 1)) and m.shared == ("happiness", "Angry")
    assert m.source_only == ("sadness",) and m.target_only == ("contempt",) and m.source_columns == (0, 1)


def test_evaluate_and_init_from_agree_on_a_folder_set(tmp_path: Path, dan_evaluate, capsys) -> None:
    """A folder set whose classes are ``happy``, ``Happiness`` and ``angry``, a model trained with ``Happy``,
    ``anger`` and ``sadness``: both commands pair happiness and anger, and both leave sadness out."""
    root = tmp_path / "faces"
    fd.make_folder(root, classes=("happy", "Happiness", "angry"), splits=("train", "test"), per=2)
    labels = folder_label_names(root)
    assert labels == ("happiness", "anger")  # happy and Happiness are one class
    torch.manual_seed(0)
    model = dan.DAN(num_classes=3, num_heads=1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = ("Happy", "anger", "sadness"), dan.Preprocessing(input_size=32)
    ckpt = dan.save_model(model, tmp_path / "m.pt")

    metrics, _, printed = dan_evaluate(ckpt, "folder", root, "--split", "test", "--backend", "torch")
    assert metrics["labels"] == ["happiness", "anger"] and metrics["samples"] == 6  # no image left out
    assert metrics["classes"]["data_only"] == {} and list(metrics["classes"]["model_only"]) == ["sadness"]
    assert "left out" not in printed

    module = DANModule(num_classes=2, num_heads=1, backbone="test_resnet", label_names=list(labels))
    report = module.start_from(str(ckpt))
    assert report.match.shared == tuple(metrics["labels"])  # the classes evaluate scored are the ones kept
    assert report.match.source_only == tuple(metrics["classes"]["model_only"]) == ("sadness",)
    for i, j in report.match.pairs:  # and their classifier rows came across
        assert torch.equal(module.model.state_dict()["fc.weight"][j], model.state_dict()["fc.weight"][i])
    assert "kept classes (2): happiness, anger" in capsys.readouterr().out
