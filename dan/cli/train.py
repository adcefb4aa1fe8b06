"""``dan fit|validate|test -c configs/NAME.yaml``: training through Lightning's ``LightningCLI``.

``--help`` prints a short guide at once; ``--help-all`` prints every option LightningCLI knows (it
imports Lightning, the model and the data module to list them, which takes seconds). The CLI itself
is :mod:`dan.training.cli`.
"""

from __future__ import annotations

__all__ = ["HELP", "main"]

HELP = """usage: dan {fit,validate,test} -c CONFIG.yaml [-c DELTA.yaml ...] [--KEY VALUE ...]

Train (fit), validate or test DAN with Lightning's LightningCLI; every Lightning option works.

configs (numbers live there; several -c files are merged in order):
  configs/rafdb.yaml        the paper's RAF-DB recipe (MS-Celeb ResNet-18, SGD 0.1, 40 epochs)
  configs/affectnet8.yaml   the paper's AffectNet-8 recipe (affectnet7.yaml: 7 classes)
  configs/fer2013.yaml      FER2013 (ours: the RAF-DB recipe)
  configs/synthetic.yaml    CPU-sized, on 'dan synth' faces
  configs/ablation/*.yaml   one-key deltas: K heads, without a loss, mha heads

common options:
  --data.root DIR                 the data set (--data.format rafdb|affectnet|fer2013|folder)
  --data.val_fraction F           validation held out of training where there is no validation split
  --data.batch_size N             per device
  --trainer.max_epochs N          --trainer.devices N --trainer.strategy ddp (multi-GPU)
  --trainer.precision P           32-true, bf16-mixed, 16-mixed; null = auto (bf16 where native)
  --ckpt_path runs/.../last.ckpt  resume
  --model.head dan|mha            --model.num_heads K  --model.lambda_af W  --model.lambda_pt W
  --print_config                  the full merged configuration, then exit

  dan fit --help-all              every option (imports Lightning: takes a few seconds)
"""


def main(argv: list[str]) -> int:
    """Run ``dan fit|validate|test`` with ``argv`` (``["fit", "-c", "configs/rafdb.yaml", ...]``)."""
    rest = argv[1:]
    if not rest or any(a in ("-h", "--help") for a in rest):
        print(HELP.replace("{fit,validate,test}", argv[0] if argv else "fit"))
        return 0 if rest else 2
    argv = [("--help" if a == "--help-all" else a) for a in argv]
    from dan.training.cli import run

    return run(argv)
