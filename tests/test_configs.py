"""The recipes compose (``extends:``) into the numbers the paper gives, and nothing is repeated."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dan.cli.main import main
from dan.cli.train import expand_configs
from dan.errors import DanError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _resolved(capsys, *configs: str) -> dict:
    args = ["fit", *[x for c in configs for x in ("-c", str(CONFIGS / c))], "--print_config"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_recipes_resolve_to_the_papers_numbers(capsys) -> None:
    rafdb = _resolved(capsys, "rafdb.yaml")
    assert rafdb["model"]["optimizer"]["init_args"]["lr"] == 0.1 and rafdb["trainer"]["max_epochs"] == 40
    assert rafdb["model"]["affinity_centres"] == 8 and rafdb["data"]["batch_size"] == 256
    assert rafdb["model"]["backbone_weights"] == "msceleb"  # from base.yaml: fetched by name into the cache
    assert rafdb["trainer"]["logger"][0]["init_args"]["name"] == "rafdb"
    a7, a8 = _resolved(capsys, "affectnet7.yaml"), _resolved(capsys, "affectnet8.yaml")
    assert (a7["data"]["num_classes"], a8["data"]["num_classes"]) == (7, 8)
    assert a7["model"]["optimizer"] == a8["model"]["optimizer"] and a7["data"]["balanced_sampler"] is True
    assert a7["trainer"]["logger"][0]["init_args"]["name"] == "affectnet7"
    fer = _resolved(capsys, "fer2013.yaml")
    assert fer["model"]["optimizer"]["init_args"]["lr"] == 0.05 and fer["model"]["affinity_centres"] is None
    assert fer["data"]["augment"] == "rafdb" and fer["trainer"]["max_epochs"] == 40  # the RAF-DB recipe
    synth = _resolved(capsys, "synthetic.yaml", "ablation/k1.yaml")
    assert synth["model"]["num_heads"] == 1 and synth["trainer"]["precision"] is None
    assert synth["trainer"]["logger"][0]["init_args"]["name"] == "synthetic"


def test_no_recipe_repeats_its_base() -> None:
    for path in CONFIGS.glob("*.yaml"):
        text = path.read_text()
        assert "logger" not in text, path  # loggers come from dan fit, named after the recipe
        assert "T_max" not in text, path  # schedules size themselves from the run


def test_extends_chain_and_its_errors(tmp_path: Path) -> None:
    chain = expand_configs(["fit", "-c", str(CONFIGS / "affectnet7.yaml"), "--x", "1"])
    assert [Path(p).name for p in chain[2::2][:3]] == ["base.yaml", "affectnet8.yaml", "affectnet7.yaml"]
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(DanError, match="in a circle"):
        expand_configs(["-c", str(tmp_path / "a.yaml")])
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(DanError, match="missing.yaml does not exist"):
        expand_configs(["-c", str(tmp_path / "c.yaml")])
    (tmp_path / "d.yaml").write_text("model:\n  num_heads: [1\n")
    with pytest.raises(DanError, match=r"d.yaml:\d+: not valid YAML"):
        expand_configs(["--config", str(tmp_path / "d.yaml")])
