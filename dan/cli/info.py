"""``dan info``: build (or load) a model, run it on one image and print what it computes.

The smallest end-to-end check of an installation: no data set and no face detector needed.
"""

from __future__ import annotations

import argparse

from dan.vocab import LABEL_SETS, parse_labels, resolve_labels

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dan info", description=__doc__)
    p.add_argument(
        "--checkpoint",
        help="any checkpoint dan.load_model reads, or a released model name (rafdb, affectnet7, affectnet8) "
        "(default: a new random model)",
    )
    p.add_argument(
        "--labels",
        type=parse_labels,
        help=f"label set ({', '.join(LABEL_SETS)}) or comma-separated class names (7-class reference files need one)",
    )
    p.add_argument("--image", help="image to run on (default: a generated test pattern)")
    p.add_argument("--num-heads", type=int, default=4, help="heads of a new model (default 4)")
    p.add_argument("--backbone", default="resnet18", help="timm backbone of a new model (default resnet18)")
    return p


def main(argv: list[str]) -> int:
    """Run ``dan info``; returns the exit status."""
    args = _parser().parse_args(argv)
    import numpy as np
    import torch

    from dan.imaging import read_image
    from dan.models import DAN, load_model
    from dan.preprocess import prepare_face

    if args.checkpoint:
        model = load_model(args.checkpoint, labels=args.labels)
        source = args.checkpoint
    else:
        wanted = args.labels or "rafdb"
        count = len(LABEL_SETS[wanted]) if isinstance(wanted, str) else len(wanted)
        labels = resolve_labels(wanted, count)
        model = DAN(num_classes=len(labels), num_heads=args.num_heads, backbone=args.backbone).eval()
        model.labels = labels
        source = "new model with random weights (untrained: its guesses mean nothing yet)"
    size = model.preprocessing.input_size
    if args.image:
        rgb = read_image(args.image)
    else:  # a smooth colour pattern so the run needs no file
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        rgb = (np.stack([xx, yy, 1 - xx * yy], -1) * 255).astype(np.uint8)
    x = torch.from_numpy(prepare_face(rgb, model.preprocessing)).unsqueeze(0)  # (1, 3, S, S)
    with torch.inference_mode():
        out = model(x, return_attention=True)
    temperature = getattr(model, "temperature", None)
    probs = (out.logits / (temperature or 1.0)).softmax(-1)[0]  # the calibrated temperature, as every runtime
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model:      {source}")
    print(f"settings:   {model.model_config}  ({n_params:,} parameters)")
    if model.started_from:  # fine-tuned: what its training started from
        print(f"started:    from {model.started_from.get('spec')} ({str(model.started_from.get('checksum'))[:23]}...)")
    if temperature is not None:  # dan calibrate: probabilities are softmax(logits / T)
        cal = getattr(model, "calibration", None) or {}
        where = f" (fitted on {cal['format']}/{cal['split']}, {cal['samples']} images)" if "split" in cal else ""
        print(f"calibrated: temperature {temperature:.4g}{where}")
    else:
        print("calibrated: no (temperature 1; 'dan calibrate' fits one)")
    print(f"input:      {args.image or 'generated pattern'} -> {tuple(x.shape)}")
    print(
        f"outputs:    logits {tuple(out.logits.shape)}, features {tuple(out.features.shape)}, "
        f"heads {tuple(out.heads.shape)}, attention {tuple(out.attention.shape)}"
        + (f", va {tuple(out.va.shape)}" if out.va is not None else "")
    )
    if out.va is not None:  # the valence/arousal output (model.va_head)
        print(f"valence:    {float(out.va[0, 0]):+.3f}, arousal {float(out.va[0, 1]):+.3f}")
    assert model.labels is not None  # load_model and the new-model branch set them
    print("prediction: " + ", ".join(f"{model.labels[i]} {probs[i]:.3f}" for i in probs.argsort(descending=True)))
    return 0
