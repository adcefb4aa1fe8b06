#!/usr/bin/env python
"""Parameters and multiply-adds of DAN with each head type (``dan``, ``mha``), split by part.

Multiply-adds are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one image (batch 1,
eval mode): convolutions, matrix products and attention, as fvcore counts them; BatchNorm,
LayerNorm, activations, softmax and pooling are not counted. MACs = FLOPs / 2. Usage::

    python -m scripts.bench.model_stats [--classes 7] [--heads 4] [--size 224] [--backbone resnet18]

The paper (arXiv 2109.07270) reports 19,723,733 parameters and about 2.23 G multiply-adds for
C = 7, K = 4 at 224 px: ResNet-18 about 1.82 G, the heads about 0.41 G.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from dan.models.dan import DAN, HEAD_TYPES

PARTS = ("backbone", "heads", "classifier")


def _params(model: DAN) -> dict[str, int]:
    count = {part: 0 for part in PARTS}
    for name, p in model.named_parameters():
        part = name.split(".", 1)[0]
        count[part if part in count else "classifier"] += p.numel()  # fc, bn
    count["total"] = sum(count.values())
    return count


@torch.no_grad()
def _macs(model: DAN, size: int) -> dict[str, int]:
    x = torch.randn(1, model.in_chans, size, size)
    # SDPA's math path is made of matrix products the counter knows (it has no formula for every fused kernel)
    with FlopCounterMode(display=False) as counter, sdpa_kernel([SDPBackend.MATH]):
        model(x)
    flops = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    top = type(model).__name__
    macs = {"heads": flops.get(f"{top}.heads", 0) // 2, "classifier": flops.get(f"{top}.fc", 0) // 2}
    macs["total"] = flops.get("Global", 0) // 2
    macs["backbone"] = macs["total"] - macs["heads"] - macs["classifier"]  # forward_features: no module call
    return macs


def stats(head: str, num_classes: int, num_heads: int, size: int, backbone: str) -> dict[str, dict[str, int]]:
    """``{"params": {...}, "macs": {...}}`` per part (backbone, heads, classifier, total) of one model."""
    torch.manual_seed(0)
    model = DAN(num_classes=num_classes, num_heads=num_heads, backbone=backbone, head=head).eval()
    return {"params": _params(model), "macs": _macs(model, size)}


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table of parameters and multiply-adds per head type."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--backbone", default="resnet18")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(f"C = {args.classes}, K = {args.heads}, {args.size} px, {args.backbone}; MACs = FLOPs / 2 (FlopCounterMode)")
    print()
    print("| head | parameters | of which heads | multiply-adds | backbone | heads | classifier |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for head in HEAD_TYPES:
        s = stats(head, args.classes, args.heads, args.size, args.backbone)
        par, mac = s["params"], s["macs"]
        print(
            f"| {head} | {par['total']:,} | {par['heads']:,} | {mac['total'] / 1e9:.3f} G "
            f"| {mac['backbone'] / 1e9:.4f} G | {mac['heads'] / 1e9:.4f} G | {mac['classifier']:,} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
