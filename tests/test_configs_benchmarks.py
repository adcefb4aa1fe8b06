"""The SFEW, FERPlus, ExpW and CK+ recipes resolve, and their data sections read their layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dan.cli.main import main
from dan.data.datamodule import FERDataModule

import fakedata as fd

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _resolved(capsys, config: Path) -> dict:
    with pytest.raises(SystemExit) as done:
        main(["fit", "-c", str(config), "--print_config"])
    assert done.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_ferplus_expw_and_ckplus_recipes(capsys) -> None:
    ferplus = _resolved(capsys, CONFIGS / "ferplus.yaml")
    assert ferplus["data"]["format"] == "ferplus" and ferplus["data"]["batch_size"] == 128  # the FER2013 recipe
    assert ferplus["model"]["optimizer"]["init_args"]["lr"] == 0.05 and ferplus["model"]["affinity_centres"] is None
    assert ferplus["trainer"]["logger"][0]["init_args"]["name"] == "ferplus"
    expw = _resolved(capsys, CONFIGS / "expw.yaml")
    assert expw["data"]["format"] == "expw" and expw["data"]["num_classes"] is None  # not AffectNet's 8
    assert expw["data"]["balanced_sampler"] is True and expw["model"]["optimizer"]["class_path"] == "torch.optim.Adam"
    assert expw["data"]["split_seed"] == 0
    ckplus = _resolved(capsys, CONFIGS / "ckplus.yaml")
    assert ckplus["data"]["format"] == "ckplus" and (ckplus["data"]["fold"], ckplus["data"]["folds"]) == (0, 10)
    assert ckplus["model"]["optimizer"]["init_args"]["lr"] == 0.01 and ckplus["trainer"]["max_epochs"] == 30
    assert ckplus["model"]["affinity_centres"] is None and ckplus["data"]["augment"] == "rafdb"


def test_sfew_recipe_fine_tunes_the_rafdb_model(tmp_path: Path, capsys) -> None:
    raw = yaml.safe_load((CONFIGS / "sfew.yaml").read_text())
    assert raw["extends"] == "rafdb.yaml" and raw["model"]["init_from"] == "rafdb"
    del raw["model"]["init_from"]  # model.init_from comes with another change; the rest resolves on its own
    raw["extends"] = str(CONFIGS / "rafdb.yaml")
    (tmp_path / "sfew.yaml").write_text(yaml.safe_dump(raw))
    sfew = _resolved(capsys, tmp_path / "sfew.yaml")
    assert sfew["data"]["format"] == "sfew" and sfew["data"]["test_split"] is None  # Val, the format's test role
    assert sfew["model"]["optimizer"]["init_args"]["lr"] == 0.01 and sfew["model"]["affinity_centres"] is None


@pytest.mark.parametrize(
    ("recipe", "make", "classes"),
    [
        ("sfew", fd.make_sfew, 7),
        ("ferplus", fd.make_ferplus, 8),
        ("expw", fd.make_expw, 7),
        ("ckplus", fd.make_ckplus, 7),
    ],
)
def test_each_recipe_reads_its_layout(tmp_path: Path, recipe: str, make, classes: int) -> None:
    make(tmp_path)
    data = yaml.safe_load((CONFIGS / f"{recipe}.yaml").read_text())["data"]
    dm = FERDataModule(**{**data, "root": str(tmp_path), "num_workers": 0, "image_size": 16})
    assert dm.num_classes == classes
    dm.setup("fit")
    assert dm.train_dataset is not None and dm.val_dataset is not None and len(dm.val_dataset) > 0
