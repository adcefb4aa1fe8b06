#!/usr/bin/env python
"""Time the quickstart's training step on the CPU: today's path against the new one, interleaved.

The step is what ``dan fit -c configs/synthetic.yaml`` runs per batch: a randomly initialised
ResNet-18 with K = 4 DAN heads, float32, the three losses as :class:`dan.training.module.DANModule`
computes them (cross-entropy, affinity x lambda_af, partition), backward, and the recipe's optimiser
step (AdamW). Paths:

- ``old``: every convolution through ``F.conv2d`` (the code before :mod:`dan.models.tapconv`),
  every parameter channels-last when channels-last is on (the old ``configure_model``), and the
  optimiser without ``fused``;
- ``new``: the model as ``DANModule.configure_model`` prepares it now (3x3 convolutions of the heads
  and the backbone on maps up to 4 x 4 as per-tap products, then channels-last) and the recipe's optimiser
  settings (``configs/synthetic.yaml``: AdamW with ``fused``);
- with ``--breakdown`` also ``tap products``: ``new`` with the optimiser without ``fused``.

Paths run in interleaved rounds (A B A B ...); each round times ``--iters`` steps per path after
one warm-up step, and a path's figure is the smallest of its per-round medians. The table gives ms
per step, the speed-up over ``old``, GFLOP per step (``torch.utils.flop_counter.FlopCounterMode``,
forward + backward; convolutions count their padding), GFLOP/s, and the float32 ceiling: a
2048 x 2048 matrix product timed in the same rounds. Usage::

    python -m scripts.bench.step [--size 48] [--batch 64] [--threads 2] [--no-channels-last]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from dan.models.tapconv import TapConv2d
from dan.training.module import DANModule
from scripts.common.measure import REPO as ROOT
from scripts.common.measure import interleaved_rounds, machine_header

warnings.filterwarnings("ignore")
CONFIG = ROOT / "configs" / "synthetic.yaml"


def recipe_model_args(path: Path = CONFIG) -> dict:
    """The ``model:`` section of a recipe, merged over the configs it ``extends`` (base first)."""
    data = yaml.safe_load(path.read_text())
    parent = data.get("extends")
    merged = recipe_model_args(path.parent / parent) if parent else {}
    merged.update(data.get("model") or {})
    return merged


def build(path: str, model_args: dict, channels_last: bool, seed: int = 0) -> tuple[DANModule, torch.optim.Optimizer]:
    """A training module and its optimiser for one path (same initial weights for every path)."""
    torch.manual_seed(seed)
    opt = model_args["optimizer"]
    opt_cls = getattr(torch.optim, opt["class_path"].rsplit(".", 1)[-1])
    opt_kwargs = dict(opt.get("init_args") or {})
    module = DANModule(
        num_classes=7,
        num_heads=int(model_args.get("num_heads", 4)),
        backbone=model_args.get("backbone", "resnet18"),
        backbone_weights=None,
        lambda_af=float(model_args.get("lambda_af", 1.0)),
        lambda_pt=float(model_args.get("lambda_pt", 1.0)),
        channels_last=channels_last,
    )
    module.train()
    if path == "old":
        if channels_last:  # the old configure_model: every parameter channels-last
            module.model.to(memory_format=torch.channels_last)
        for m in module.modules():
            if isinstance(m, TapConv2d):
                m.tap_max_hw = 0  # the heads' grouped convolutions through F.conv2d
    else:
        module.configure_model()  # tap products in the heads and the backbone, then the memory format
    if path != "new":
        opt_kwargs.pop("fused", None)
    return module, opt_cls(module.parameters(), **opt_kwargs)


def train_step(module: DANModule, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """Forward, the three losses (as ``DANModule`` computes them), backward, optimiser step."""
    losses, _ = module._losses(x, y)
    losses["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_flops(module: DANModule, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """GFLOP of one training step (matrix products and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        train_step(module, optimizer, x, y)
    return counter.get_total_flops() / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=48, help="input side in pixels (48: the quickstart)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format (default: the recipe's model.channels_last)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=3, help="timed steps per path per round")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this thread's CPU time (with --threads 1: steady while other processes share the CPU)",
    )
    parser.add_argument("--breakdown", action="store_true", help="also time the intermediate paths")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the recipe (default configs/synthetic.yaml)")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")

    torch.set_num_threads(args.threads)
    model_args = recipe_model_args(args.config)
    channels_last = bool(model_args.get("channels_last", False)) if args.channels_last is None else args.channels_last
    paths = ["old", "tap products", "new"] if args.breakdown else ["old", "new"]

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    y = torch.randint(0, 7, (args.batch,), generator=g)
    built = {p: build(p, model_args, channels_last) for p in paths}
    flops = {p: step_flops(*built[p], x, y) for p in paths}
    fns: dict[str, Callable[[], None]] = {p: (lambda p=p: train_step(*built[p], x, y)) for p in paths}
    a = torch.randn(2048, 2048, generator=g)
    b = torch.randn(2048, 2048, generator=g)
    fns["matmul"] = lambda: torch.mm(a, b)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    seconds = interleaved_rounds(fns, args.rounds, args.iters, clock)

    opt = model_args["optimizer"]
    print(machine_header(args.threads))
    print(
        f"step: {model_args.get('backbone', 'resnet18')} + {model_args.get('num_heads', 4)} DAN heads, "
        f"{args.size} px, batch {args.batch}, float32, channels-last {'on' if channels_last else 'off'}, "
        f"{opt['class_path'].rsplit('.', 1)[-1]} {opt.get('init_args') or {}} ({args.config.name}); "
        f"{args.rounds} rounds x {args.iters} steps, interleaved, min of per-round medians ({args.clock} clock)"
    )
    print(f"{'path':<20} {'ms/step':>9} {'speed-up':>9} {'GFLOP/step':>11} {'GFLOP/s':>8}")
    for p in paths:
        s = seconds[p]
        print(f"{p:<20} {s * 1e3:9.1f} {seconds['old'] / s:8.2f}x {flops[p]:11.1f} {flops[p] / s:8.1f}")
    mm = 2 * 2048**3 / 1e9
    print(f"{'matmul 2048^2 fp32':<20} {seconds['matmul'] * 1e3:9.1f} {'':>9} {mm:11.1f} {mm / seconds['matmul']:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
