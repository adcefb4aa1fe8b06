"""``dan fit|validate|test -c configs/NAME.yaml``: training through Lightning's ``LightningCLI``.

``--help`` prints a short guide at once; ``--help-all`` prints every option LightningCLI knows (it
imports Lightning, the model and the data module to list them, which takes seconds). The CLI itself
is :mod:`dan.training.cli`.

Configs compose: a config whose top level says ``extends: other.yaml`` (a path relative to it) is
read after ``other.yaml``, which may extend another in turn; LightningCLI merges the chain in order,
so a recipe holds only what differs from its base.
"""

from __future__ import annotations

import os
from pathlib import Path

from dan.errors import DanError
from dan.vocab import FORMAT_NAMES, HEADS

__all__ = ["HELP", "expand_configs", "main"]

HELP = f"""usage: dan {{fit,validate,test}} -c CONFIG.yaml [-c DELTA.yaml ...] [--KEY VALUE ...]

Train (fit), validate or test DAN with Lightning's LightningCLI; every Lightning option works.

configs (numbers live there; several -c files are merged in order):
  configs/rafdb.yaml        the paper's RAF-DB recipe (MS-Celeb ResNet-18, SGD 0.1, 40 epochs)
  configs/affectnet8.yaml   the paper's AffectNet-8 recipe (affectnet7.yaml: 7 classes)
  configs/fer2013.yaml      FER2013 (ours: the RAF-DB recipe)
  configs/ferplus.yaml      FERPlus, 8 classes (ours: the FER2013 recipe)
  configs/sfew.yaml         SFEW 2.0 (ours: fine-tunes the RAF-DB model)
  configs/expw.yaml         ExpW, split by photo (ours: the AffectNet recipe, 7 classes)
  configs/ckplus.yaml       CK+, one run per subject-independent fold (--data.fold 0..9)
  configs/synthetic.yaml    CPU-sized, on 'dan synth' faces
  configs/ablation/*.yaml   one-key deltas: K heads, without a loss, mha heads

common options:
  --data.root DIR                 the data set (--data.format {"|".join(FORMAT_NAMES)})
  --data.val_fraction F           validation held out of training where there is no validation split
  --data.batch_size N             per device
  --trainer.max_epochs N          --trainer.devices N --trainer.strategy ddp (multi-GPU)
  --trainer.precision P           32-true, bf16-mixed, 16-mixed; null = auto (bf16 where native)
  --ckpt_path runs/.../last.ckpt  resume
  --model.head {"|".join(HEADS)}            --model.num_heads K  --model.lambda_af W  --model.lambda_pt W
  --print_config                  the full merged configuration, then exit

  dan fit --help-all              every option (imports Lightning: takes a few seconds)
"""


def _chain(path: str, seen: tuple[str, ...] = ()) -> list[str]:
    """``-c`` arguments for ``path`` preceded by those of the configs it ``extends`` (base first)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError:
        return ["-c", path]  # LightningCLI says what is wrong with it
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise DanError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    parent = data.get("extends") if isinstance(data, dict) else None
    if parent is None:
        return ["-c", path]
    if not isinstance(parent, str):
        raise DanError(f"{path}: extends={parent!r}: expected the path of another config")
    base = os.path.normpath(os.path.join(os.path.dirname(path), parent))
    if base in seen or base == os.path.normpath(path):
        raise DanError(f"{path}: extends {parent} in a circle ({' -> '.join((*seen, path, base))})")
    if not Path(base).is_file():
        raise DanError(f"{path}: extends {parent}, but {base} does not exist")
    return [*_chain(base, (*seen, os.path.normpath(path))), "-c", path]


def expand_configs(argv: list[str]) -> list[str]:
    """``argv`` with every ``-c FILE`` / ``--config FILE`` preceded by the configs FILE ``extends``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config") and i + 1 < len(argv):
            out += _chain(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--config="):
            out += _chain(arg.split("=", 1)[1])
        else:
            out.append(arg)
        i += 1
    return out


def main(argv: list[str]) -> int:
    """Run ``dan fit|validate|test`` with ``argv`` (``["fit", "-c", "configs/rafdb.yaml", ...]``)."""
    rest = argv[1:]
    if not rest or any(a in ("-h", "--help") for a in rest):
        print(HELP.replace("{fit,validate,test}", argv[0] if argv else "fit"))
        return 0 if rest else 2
    argv = expand_configs([("--help" if a == "--help-all" else a) for a in argv])
    from dan.training.cli import run

    return run(argv)
