#!/usr/bin/env python
"""Speed of DAN's inference and training paths against a plain per-head reference model, side by side.

The baseline is the reference implementation's structure (:class:`dan.models.reference.PlainDAN`): a
torchvision ResNet-18 trunk and K separate head modules run one after another, float32, eager. Every
other path runs the same weights on the same inputs:

- inference, batch 1 and batch N: ``dan.load_model``'s model eager (fused heads); ``TorchBackend``
  (re-parameterised: BatchNorms folded, head branches merged; channels-last); torch.compile of that
  (inductor, freezing); ONNX Runtime and OpenVINO float32; ONNX Runtime int8 static as ``dan export
  --int8 --calib DIR`` writes it, int8 as ``dan export --int8`` writes it without ``--calib``
  (calibrated on generated faces), the same file under OpenVINO, and dynamic int8 (``--int8-mode
  dynamic``), see :mod:`scripts.common.int8`; and the top-1 agreement of each int8 model with float32 on
  faces it was not calibrated on (real photographs and generated faces);
- training step (forward + CE + affinity + partition loss + backward + SGD): baseline, fused,
  fused + channels-last, fused + channels-last + torch.compile; images per second.

Timings are interleaved rounds (:func:`scripts.common.measure.interleaved_rounds`: every path in turn, each
path's figure the smallest of its per-round medians), so a load change on a shared machine hits all
paths alike: the ratios within one run are what count. Usage::

    python -m scripts.bench.speed [--size 224] [--batch 32] [--rounds 5] [--iters 10] [--threads N]
        [--checkpoint CKPT] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dan import DAN
from dan.models.checkpoint import convert_reference_state_dict
from dan.models.loading import load_model
from dan.models.losses import AffinityLoss, PartitionLoss
from dan.models.reference import PlainDAN
from dan.models.reparam import reparameterize, to_channels_last
from dan.preprocess import Preprocessing
from dan.runtime.torch import TorchBackend
from dan.system import bf16_support
from dan.vocab import LABEL_SETS
from scripts.common.measure import interleaved, interleaved_rounds, machine_header, markdown_table

warnings.filterwarnings("ignore")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--size", type=int, help="input size (default: the checkpoint's, else 224)")
    p.add_argument("--batch", type=int, default=32, help="batch of the throughput and training figures")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each path's best round counts)")
    p.add_argument("--iters", type=int, default=10, help="timed batch-1 calls per path per round")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch, ONNX Runtime and OpenVINO threads (default: all)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 2 calls, 16 generated faces")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no-train", action="store_true", help="skip the training-step figures")
    p.add_argument("--no-infer", action="store_true", help="skip the inference figures")
    p.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="also time bfloat16 autocast paths (not lossless); auto: only where the CPU has native bfloat16",
    )
    p.add_argument("--checkpoint", help="a trained resnet18 checkpoint to take the weights from (default: random)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.iters = min(args.rounds, 2), min(args.iters, 2)
    return args


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    bf16_native = bf16_support("cpu")
    args.bf16 = args.bf16 == "on" or (args.bf16 == "auto" and bf16_native.native)

    # the same weights in the reference layout and in ours
    if args.checkpoint:
        ours = load_model(args.checkpoint)
        if ours.backbone_name != "resnet18":
            raise SystemExit("the baseline is ResNet-18: pass a resnet18 checkpoint")
    else:
        ours = DAN(7, args.heads)
        ours.labels = LABEL_SETS["rafdb"]
    k, num_classes = ours.num_heads, ours.num_classes
    size = args.size or (ours.preprocessing.input_size if args.checkpoint else 224)
    ours.preprocessing = Preprocessing(input_size=size, mean=ours.preprocessing.mean, std=ours.preprocessing.std)
    if not args.checkpoint:
        _statistics_from_faces(ours, 16 if args.quick else 64)
    ref = PlainDAN(num_classes, k)
    ref.load_state_dict(_reference_keys_from(ours, ref))
    ours.eval()
    ref.eval()
    batch = args.batch
    print(f"machine: {machine_header(threads, libraries=('onnxruntime', 'openvino'))}")
    print(f"bfloat16: {'timed' if args.bf16 else 'not timed'} ({bf16_native.reason})")
    print(
        f"settings: size {size}, batch {batch}, heads {k}, {args.rounds} rounds of {args.iters} calls, "
        f"threads {threads}, weights {args.checkpoint or 'random (seed 0), BatchNorm statistics of generated faces'}\n",
        flush=True,
    )
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        if not args.no_infer:
            inference_benchmark(ours, ref, Path(work), args, threads, notes)
        if not args.no_train:
            print("\n### Training step (forward + CE + affinity + partition loss + backward + SGD)\n", flush=True)
            iters = max(3, args.iters // 2)
            train_rows = training_benchmark(
                ref, ours, size, batch, num_classes, iters, not (args.quick or args.no_compile), notes, args.bf16
            )
            base = train_rows[0][1]
            rows = [(n, f"{ips:.1f}", f"{ips / base:.2f}x") for n, ips in train_rows]
            print(markdown_table(["path", f"batch {batch} images/s", "speed-up"], rows, right=(1, 2)))
    print("\nnotes:")
    for n in notes:
        print(f"- {n}")
    return 0


def _statistics_from_faces(model: DAN, n: int) -> None:
    """Random weights, but BatchNorm statistics measured on ``n`` generated faces (seed 2, in none of the
    benchmark's face sets): the random model then tells faces apart, so int8 agreement is not trivial."""
    from dan.synthface import prepared_faces

    faces = torch.from_numpy(prepared_faces(n, model.preprocessing, seed=2))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches
    with torch.no_grad():
        model.train()
        for i in range(0, n, 16):
            model(faces[i : i + 16])
    model.eval()


def inference_benchmark(
    ours: DAN, ref: PlainDAN, work: Path, args: argparse.Namespace, threads: int, notes: list[str]
) -> None:
    """Time every inference path (batch 1 and batch N, interleaved rounds) and print the tables."""
    from scripts.common.int8 import INT8_NAMES, agreement_rows, face_sets, make_onnx_files

    size, batch = ours.preprocessing.input_size, args.batch
    x1 = torch.randn(1, 3, size, size)
    xb = torch.randn(batch, 3, size, size)
    backend = TorchBackend(ours, threads=threads)
    rep_cl = reparameterize(ours, channels_last=True)
    inf: dict[str, Callable[[torch.Tensor], object]] = {
        "reference per-head, eager (baseline)": lambda x: ref(x)[0],
        "dan.load_model, eager (fused heads)": lambda x: ours(x).logits,
        "TorchBackend (re-parameterised, channels-last)": lambda x: backend(x.numpy()),
    }
    with torch.inference_mode():
        want = ref(xb[:4])[0].numpy()
        scale = float(np.abs(want).max())
        notes.append(f"reference logits on random inputs reach |{scale:.3g}|; max |logit diff| vs the reference:")
        notes.append(f"TorchBackend {np.abs(backend(xb[:4].numpy()) - want).max():.2g}")
    if args.bf16:

        def bf16_logits(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return rep_cl(x.contiguous(memory_format=torch.channels_last)).logits.float()

        inf["TorchBackend + bf16 autocast (not lossless)"] = bf16_logits
    if not args.no_compile:
        try:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            t0 = time.time()
            compiled = torch.compile(rep_cl)
            with torch.inference_mode():
                for x in (x1, xb):
                    out = compiled(x.contiguous(memory_format=torch.channels_last)).logits
            inf["torch.compile of TorchBackend's model"] = lambda x: (
                compiled(x.contiguous(memory_format=torch.channels_last)).logits
            )
            notes.append(
                f"torch.compile (inductor, freezing): compiled in {time.time() - t0:.0f} s, "
                f"max |logit diff| {np.abs(out[:4].numpy() - want).max():.2g}"
            )
        except Exception as err:
            notes.append(f"torch.compile failed: {type(err).__name__}: {' '.join(str(err).split())[:160]}")
    int8: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {}
    float32: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    sets: dict[str, np.ndarray] = {}
    try:
        from dan.runtime.onnx import OnnxBackend

        calib, sets = face_sets(ours, 16 if args.quick else 128)
        files, made = make_onnx_files(ours, work, calib)
        notes += made
        # no spin-waiting: idle ONNX Runtime threads would steal the cores from the next (interleaved) path
        ort = {n: OnnxBackend(f, threads=threads, spinning=False) for n, f in files.items()}
        float32["onnx"] = ort["float32"]
        inf["ONNX Runtime float32"] = lambda x: ort["float32"](x.numpy())
        notes.append(f"ONNX Runtime float32 {np.abs(ort['float32'](xb[:4].numpy()) - want).max():.2g}")
        try:
            from dan.runtime.openvino import OpenVinoBackend

            ov = {n: OpenVinoBackend(files[n], threads=threads) for n in ("float32", "default")}
            float32["openvino"] = ov["float32"]
            inf["OpenVINO float32"] = lambda x: ov["float32"](x.numpy())
            notes.append(f"OpenVINO float32 {np.abs(ov['float32'](xb[:4].numpy()) - want).max():.2g}")
        except Exception as err:
            ov = {}
            notes.append(f"OpenVINO not timed: {type(err).__name__}: {' '.join(str(err).split())[:160]}")
        for n in ("static", "default", "dynamic"):
            inf[f"ONNX Runtime {INT8_NAMES[n]}"] = lambda x, b=ort[n]: b(x.numpy())
            int8[f"ONNX Runtime {INT8_NAMES[n]}"] = ("onnx", ort[n])
        if ov:
            inf[f"OpenVINO {INT8_NAMES['default']}"] = lambda x: ov["default"](x.numpy())
            int8[f"OpenVINO {INT8_NAMES['default']}"] = ("openvino", ov["default"])
    except Exception as err:
        traceback.print_exc()
        notes.append(f"ONNX paths failed: {type(err).__name__}: {err}")

    with torch.inference_mode():
        lat = interleaved_rounds({n: (lambda f=f: f(x1)) for n, f in inf.items()}, args.rounds, args.iters)
        thr = interleaved_rounds({n: (lambda f=f: f(xb)) for n, f in inf.items()}, args.rounds, 1)
    base = next(iter(inf))
    rows = [
        (n, f"{lat[n] * 1e3:.1f}", f"{lat[base] / lat[n]:.2f}x", f"{batch / thr[n]:.1f}", f"{thr[base] / thr[n]:.2f}x")
        for n in inf
    ]
    print("### Inference\n")
    header = ["path", "batch 1 (ms)", "vs reference", f"batch {batch} (img/s)", "vs reference"]
    print(markdown_table(header, rows, right=(1, 2, 3, 4)))
    if int8:
        print("\n### int8 top-1 agreement with float32 (the same runtime) on faces none was calibrated on\n")
        agree, classes = agreement_rows(float32, int8, sets)
        print(markdown_table(["int8 model", *sets, "all"], agree, right=(1, 2, 3, 4)))
        notes.append(f"float32 (ONNX Runtime) predicts {classes} different classes on these faces")
        static, default = (f"ONNX Runtime {INT8_NAMES[n]}" for n in ("static", "default"))
        everywhere = {row[0]: float(row[-1].rstrip("%")) / 100 for row in agree}
        print("\ntargets (batch 1, this run):")
        print(
            f"- static int8 >= 3x the reference with >= 99 % agreement: {lat[base] / lat[static]:.2f}x, "
            f"{everywhere[static]:.1%}"
        )
        print(
            f"- dan export --int8 (no --calib) at least as fast as ONNX Runtime float32: "
            f"{lat['ONNX Runtime float32'] / lat[default]:.2f}x float32's speed, {everywhere[default]:.1%} agreement"
        )
        if not args.checkpoint:
            notes.append("random weights: logit margins are not a trained model's; pass --checkpoint for agreement")


def _reference_keys_from(ours: DAN, ref: PlainDAN) -> dict:
    """Our weights in the baseline's (reference) layout: each head's slice of the fused tensors."""
    from dan.models.heads import _PER_HEAD_MAP

    own, out, k = ours.state_dict(), {}, ref.num_heads
    for key, value in ref.state_dict().items():
        m = re.match(r"cat_head(\d+)\.(.+)\.(\w+)$", key)
        if m:
            h, (dst, kind), leaf = int(m[1]), _PER_HEAD_MAP[m[2]], m[3]
            fused = own[f"heads.{dst}.{leaf}"]
            if leaf == "num_batches_tracked":
                out[key] = fused.clone()
            elif kind == "stack":
                out[key] = fused[h].clone()
            else:
                n = fused.shape[0] // k
                out[key] = fused[h * n : (h + 1) * n].clone()
        else:
            (name,) = convert_reference_state_dict({key: value})
            out[key] = own[name].clone()
    return out


def training_benchmark(
    ref: nn.Module,
    ours: DAN,
    size: int,
    batch: int,
    num_classes: int,
    iters: int,
    compile_: bool,
    notes: list[str],
    bf16: bool = False,
) -> list[tuple[str, float]]:
    """Images per second of one SGD step of each training path (interleaved)."""
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, num_classes, (batch,))
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def make(model: nn.Module, inp: torch.Tensor, unpack, compile_model: bool = False, bf16: bool = False):
        model = copy.deepcopy(model).train()
        af, pt = AffinityLoss(num_classes, 512), PartitionLoss()
        opt = torch.optim.SGD([*model.parameters(), *af.parameters()], lr=1e-4, momentum=0.9, weight_decay=1e-4)
        fwd = torch.compile(model) if compile_model else model

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, feats, heads = unpack(fwd(inp))
            logits, feats, heads = logits.float(), feats.float(), heads.float()
            loss = F.cross_entropy(logits, y) + af(feats, y) + pt(heads)
            loss.backward()
            opt.step()

        return step

    def unpack(o):
        return o.logits, o.features, o.heads

    steps = {
        "baseline (per-head, eager)": make(ref, x, lambda o: o),
        "fused heads": make(ours, x, unpack),
        "fused + channels-last": make(to_channels_last(copy.deepcopy(ours)), x_cl, unpack),
    }
    if bf16:
        steps["fused + channels-last + bf16 autocast (not lossless)"] = make(
            to_channels_last(copy.deepcopy(ours)), x_cl, unpack, bf16=True
        )
    if compile_:
        try:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = False
            t0 = time.time()
            s = make(to_channels_last(copy.deepcopy(ours)), x_cl, unpack, True)
            s()
            steps["fused + channels-last + torch.compile"] = s
            notes.append(f"training torch.compile: first step (compilation) {time.time() - t0:.0f} s")
        except Exception as err:
            notes.append(f"training torch.compile failed: {type(err).__name__}: {' '.join(str(err).split())[:160]}")
    t = interleaved(steps, iters, warmup=1)
    ceiling = matmul_gflops()
    step_flops = training_flops(ours, x, y, num_classes)
    fastest = min(v for k, v in t.items() if "bf16" not in k)  # float32 paths only
    notes.append(
        f"float32 ceiling of this CPU (a 2048x2048 matrix product): {ceiling:.0f} GFLOP/s; the fastest float32 "
        f"training path does {step_flops / 1e9:.1f} GFLOP a step ({step_flops / fastest / 1e9:.0f} GFLOP/s, "
        f"{100 * step_flops / fastest / 1e9 / ceiling:.0f}% of the ceiling)"
    )
    return [(n, batch / v) for n, v in t.items()]


def matmul_gflops(n: int = 2048, runs: int = 5) -> float:
    """Float32 GFLOP/s of one large matrix product: what the CPU can do at best with these threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def training_flops(model: DAN, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Floating-point operations of one training step (forward, losses, backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).train()
    af, pt = AffinityLoss(num_classes, 512), PartitionLoss()
    with FlopCounterMode(display=False) as counter:
        out = m(x)
        (F.cross_entropy(out.logits, y) + af(out.features, y) + pt(out.heads)).backward()
    return float(counter.get_total_flops())


if __name__ == "__main__":
    sys.exit(main())
