"""The layers of docs/design.md, checked: every import in every module of ``dan`` and ``scripts`` (read with
``ast``, lazy and type-only imports included) runs along an allowed edge, and no file edits ``sys.path``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHARED = {"dan", "errors", "vocab", "paths", "opencv", "fileio", "system", "imaging", "preprocess", "synthface"}
"""The ground floor every layer may import (``dan`` is the package root: ``from dan import __version__``)."""

ALLOWED: dict[str, set[str]] = {
    "dan": {"errors", "vocab"},
    "errors": set(),
    "vocab": {"errors"},
    "paths": set(),
    "opencv": set(),
    "fileio": {"errors"},
    "system": {"errors", "vocab"},
    "imaging": {"errors", "opencv"},
    "preprocess": {"errors", "vocab"},
    "synthface": {"opencv", "preprocess"},  # the face drawer: generated data, calibration and probe faces
    "hub": SHARED,  # downloads: the catalogue, what a spec names, the fetch, the transports, the cache and its pins
    "models": SHARED | {"hub"},
    "data": SHARED,
    "runtime": SHARED | {"hub", "models"},
    "export": SHARED | {"models", "runtime"},
    "auto": SHARED | {"models", "runtime", "export"},  # --backend auto: the race needs an ONNX export
    "inference": SHARED | {"models", "runtime", "auto"},
    "demo": SHARED | {"models", "runtime", "inference"},
    "serve": SHARED | {"runtime", "inference"},
    "web": SHARED | {"hub", "runtime", "inference"},  # the page folder: the cache lock, the model record, YuNet
    "evaluation": SHARED | {"runtime", "data"},
    "training": SHARED | {"hub", "models", "data", "evaluation"},
    "cli": SHARED
    | {"hub", "models", "data", "runtime", "export", "auto", "inference", "demo", "serve", "evaluation", "training"}
    | {"web"},
    "__main__": {"cli"},
}
"""Layer -> the other layers of ``dan`` it may import. Nothing imports ``cli`` (but ``python -m dan``)."""

OWN_IMPORTS = {"cv2": {"dan.opencv"}}
"""Third-party modules that only the named modules import: every module of ``dan`` loads OpenCV through
:mod:`dan.opencv`, which sets OpenCV's decode limit before cv2 loads."""

NEVER: dict[str, set[str]] = {"dan.models.checkpoint": {"dan.hub", "onnx"}}
"""Modules kept from some imports inside their layer: the checkpoint reader reads local files only (no
download cache) and no exported format (no ONNX)."""

TRAINING_ONLY = {"pytorch_lightning", "lightning", "lightning_fabric", "albumentations"}
"""Third-party packages only ``training`` and ``data`` (the augmentations, the LightningDataModule) use."""

DEPLOYED = {"models", "runtime", "export", "auto", "inference", "demo", "serve", "evaluation", "web"} | SHARED


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dan"


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, relative ones resolved; ``from dan import X`` gives ``dan.X``
    when ``dan/X`` is a module, else ``dan``."""
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == root.name:
                found += [
                    (node.lineno, f"{base}.{a.name}")
                    if (root / a.name).is_dir() or (root / f"{a.name}.py").is_file()
                    else (node.lineno, base)
                    for a in node.names
                ]
            else:
                found.append((node.lineno, base))
    return found


def forbidden_edges(root: Path) -> list[str]:
    """Every import of the package at ``root`` that the layer rules above do not allow, one line each."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module(path, root)
        layer = _layer(module)
        if layer not in ALLOWED:
            problems.append(f"{path.relative_to(root.parent)}: module {module} is in no layer of docs/design.md")
            continue
        for line, name in imports(path, root):
            top = name.split(".")[0]
            where = f"{path.relative_to(root.parent)}:{line}"
            if top == root.name:
                target = _layer(name)
                if target != layer and target not in ALLOWED[layer]:
                    problems.append(f"{where}: {layer} -> {target} ({name})")
            elif top in TRAINING_ONLY and layer in DEPLOYED:
                problems.append(f"{where}: {layer} -> {top} (only training and data use it)")
            if top in OWN_IMPORTS and module.replace(root.name, "dan", 1) not in OWN_IMPORTS[top]:
                problems.append(f"{where}: {module} imports {top} (only {', '.join(sorted(OWN_IMPORTS[top]))} does)")
            never = NEVER.get(module.replace(root.name, "dan", 1), set())
            if any(name == n or name.startswith(n + ".") for n in never):
                problems.append(f"{where}: {module} -> {name} (kept out of it)")
    return problems


def test_every_import_runs_along_an_allowed_edge() -> None:
    assert forbidden_edges(ROOT / "dan") == []


def test_the_check_finds_a_forbidden_edge(tmp_path: Path) -> None:
    """The checker itself: a runtime importing export, inference importing Lightning, data importing the
    model, a lazy import of the command line and a relative import into training are all reported."""
    root = tmp_path / "dan"
    for folder in ("runtime", "inference", "data", "serve", "cli", "training"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("from dan.errors import DanError\n")
    (root / "errors.py").write_text("")
    (root / "runtime" / "auto.py").write_text("from dan.export.onnx import export_onnx\n")
    (root / "inference" / "live.py").write_text("import numpy\nfrom pytorch_lightning import Trainer\n")
    (root / "data" / "crop.py").write_text("from dan import models\n")
    (root / "serve" / "app.py").write_text("def f():\n    import dan.cli.main\n    from ..training import module\n")
    (root / "models.py").write_text("")
    found = forbidden_edges(root)
    assert found == [
        "dan/data/crop.py:1: data -> models (dan.models)",
        "dan/inference/live.py:2: inference -> pytorch_lightning (only training and data use it)",
        "dan/runtime/auto.py:1: runtime -> export (dan.export.onnx)",
        "dan/serve/app.py:2: serve -> cli (dan.cli.main)",
        "dan/serve/app.py:3: serve -> training (dan.training)",
    ], found


SCRIPT_KINDS = {"bench", "demos", "maint"}
"""``scripts/``' kinds: each imports ``dan``, itself and :mod:`scripts.common`; ``common`` imports only ``dan``."""


def script_edges(root: Path) -> list[str]:
    """Every import of the scripts package at ``root`` that crosses its kinds, one line each."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module(path, root)
        kind = module.split(".")[1] if module.count(".") else ""
        if path.parent != root and kind not in SCRIPT_KINDS | {"common"}:
            problems.append(
                f"{path.relative_to(root.parent)}: in no kind of scripts/ ({', '.join(sorted(SCRIPT_KINDS))})"
            )
        for line, name in imports(path, root):
            parts = name.split(".")
            if parts[0] != root.name or len(parts) < 2:
                continue
            allowed = {"common"} if kind == "common" else {"common", kind}
            if parts[1] not in allowed:
                problems.append(f"{path.relative_to(root.parent)}:{line}: scripts.{kind or '(top)'} -> {name}")
    return problems


def test_scripts_import_along_their_kinds_and_dan_never_imports_them() -> None:
    assert script_edges(ROOT / "scripts") == []
    dan_imports = [f"{p}: {n}" for p in sorted((ROOT / "dan").rglob("*.py")) for _, n in imports(p, ROOT / "dan")]
    assert [x for x in dan_imports if x.split(": ")[1].split(".")[0] == "scripts"] == []


def test_the_script_check_finds_a_crossing(tmp_path: Path) -> None:
    root = tmp_path / "scripts"
    for folder in ("bench", "maint", "common"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "maint" / "soak.py").write_text(
        "from scripts.bench.demo import face_frames\nfrom scripts.common import x\n"
    )
    (root / "common" / "faces.py").write_text("def f():\n    from scripts.bench import detectors\n")
    (root / "bench" / "speed.py").write_text("from scripts.bench import data\nfrom dan.models import DAN\n")
    assert script_edges(root) == [
        "scripts/common/faces.py:2: scripts.common -> scripts.bench",
        "scripts/maint/soak.py:1: scripts.maint -> scripts.bench.demo",
    ]


def test_checkpoint_reading_and_opencv_rules(tmp_path: Path) -> None:
    """The checker reports a checkpoint reader that downloads or parses ONNX, and a direct ``import cv2``."""
    root = tmp_path / "dan"
    (root / "models").mkdir(parents=True)
    for name in ("__init__.py", "opencv.py", "models/__init__.py"):
        (root / name).write_text("import cv2\n" if name == "opencv.py" else "")
    (root / "models" / "checkpoint.py").write_text("from dan.hub import resolve_checkpoint\nimport onnx\n")
    (root / "models" / "crop.py").write_text("import cv2\n")
    assert forbidden_edges(root) == [
        "dan/models/checkpoint.py:1: dan.models.checkpoint -> dan.hub (kept out of it)",
        "dan/models/checkpoint.py:2: dan.models.checkpoint -> onnx (kept out of it)",
        "dan/models/crop.py:1: dan.models.crop imports cv2 (only dan.opencv does)",
    ]


FORMATS_BOTH_WAYS = {"onnx", "pt2"}
"""File formats with a runtime that reads them (``runtime/onnx.py``) and a writer (``export/onnx.py``)."""

COMMAND_NAMES = {"main", "build_parser"}
"""What every command module of ``cli`` defines."""


def name_collisions(root: Path) -> list[str]:
    """Module names in two layers and public classes or functions defined twice, one line each.

    A command of ``cli`` may share its name with the module it runs (``cli/evaluate.py``), a file format's
    runtime with its writer; everything else has one name for one thing.
    """
    modules: dict[str, list[str]] = {}
    defined: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent).as_posix()
        if path.name != "__init__.py" and path.parent.name != "cli" and path.stem not in FORMATS_BOTH_WAYS:
            modules.setdefault(path.stem, []).append(where)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and not node.name.startswith("_"):
                if not (path.parent.name == "cli" and node.name in COMMAND_NAMES):
                    defined.setdefault(node.name, []).append(where)
    found = [f"module {name}: {', '.join(paths)}" for name, paths in modules.items() if len(paths) > 1]
    return found + [f"{name}: defined in {', '.join(paths)}" for name, paths in defined.items() if len(paths) > 1]


def test_one_name_for_one_thing() -> None:
    assert name_collisions(ROOT / "dan") == []


def test_the_name_check_finds_collisions(tmp_path: Path) -> None:
    root = tmp_path / "dan"
    for folder in ("inference", "serve", "runtime", "export", "cli"):
        (root / folder).mkdir(parents=True)
    (root / "inference" / "live.py").write_text("class Frame:\n    pass\n")
    (root / "serve" / "live.py").write_text("class Frame:\n    pass\n\n\ndef _frame():\n    pass\n")
    (root / "serve" / "app.py").write_text("def _frame():\n    pass\n")
    for folder in ("runtime", "export"):
        (root / folder / "onnx.py").write_text("")
    for name in ("serve", "demo"):
        (root / "cli" / f"{name}.py").write_text("def main():\n    pass\n")
    assert name_collisions(root) == [
        "module live: dan/inference/live.py, dan/serve/live.py",
        "Frame: defined in dan/inference/live.py, dan/serve/live.py",
    ]


@pytest.mark.parametrize("folder", ["dan", "scripts", "tests"])
def test_no_file_edits_sys_path(folder: str) -> None:
    """Scripts run as modules of the scripts package and tests import it through pytest's pythonpath."""
    edits = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "path"
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "sys"
            ):
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert edits == []
