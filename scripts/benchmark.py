#!/usr/bin/env python
"""Speed of DAN's inference and training paths against a plain per-head reference model, side by side.

The baseline is the reference implementation's structure: a torchvision ResNet-18 trunk and K
separate head modules run one after another, float32, eager. Every other path runs the same
weights on the same inputs:

- inference: fused heads (eager), re-parameterised (BatchNorms folded, head branches merged),
  re-parameterised + channels-last, torch.compile (inductor, freezing), ONNX Runtime float32 and
  int8 (static QDQ, per-channel); batch-1 latency (median) and batch-N throughput;
- training step (forward + CE + affinity + partition loss + backward + SGD): baseline, fused,
  fused + channels-last, fused + channels-last + torch.compile; images per second.

Timings of the compared paths are interleaved (one run of each in turn), so a load change on the
machine hits all of them alike. Usage::

    python scripts/benchmark.py [--size 224] [--batch 32] [--iters 20] [--quick] [--checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dan import DAN  # noqa: E402
from dan.common import LABEL_SETS, Preprocessing  # noqa: E402
from dan.losses import AffinityLoss, PartitionLoss  # noqa: E402
from dan.models.checkpoint import convert_reference_state_dict, load_model  # noqa: E402
from dan.models.reparam import reparameterize, to_channels_last  # noqa: E402
from dan.system import bf16_support, describe_machine  # noqa: E402

warnings.filterwarnings("ignore")


# ----------------------------------------------------------------------------- the baseline: reference layout
class SpatialAttention(nn.Module):
    def __init__(self, c: int = 512) -> None:
        super().__init__()
        s = c // 2
        self.conv1x1 = nn.Sequential(nn.Conv2d(c, s, 1), nn.BatchNorm2d(s))
        self.conv_3x3 = nn.Sequential(nn.Conv2d(s, c, (3, 3), padding=(1, 1)), nn.BatchNorm2d(c))
        self.conv_1x3 = nn.Sequential(nn.Conv2d(s, c, (1, 3), padding=(0, 1)), nn.BatchNorm2d(c))
        self.conv_3x1 = nn.Sequential(nn.Conv2d(s, c, (3, 1), padding=(1, 0)), nn.BatchNorm2d(c))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(f)
        s = torch.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y))
        return f * s.sum(dim=1, keepdim=True)


class ChannelAttention(nn.Module):
    def __init__(self, c: int = 512) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(c, c // 16), nn.BatchNorm1d(c // 16), nn.ReLU(), nn.Linear(c // 16, c), nn.Sigmoid()
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        g = f.mean(dim=(2, 3))
        return g * self.attention(g)


class CrossAttentionHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sa, self.ca = SpatialAttention(), ChannelAttention()

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.ca(self.sa(f))


class ReferenceDAN(nn.Module):
    """torchvision ResNet-18 as nn.Sequential + K separate heads, as the reference implementation."""

    def __init__(self, num_classes: int = 7, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.features = nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])
        for k in range(num_heads):
            setattr(self, f"cat_head{k}", CrossAttentionHead())
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor):
        f = self.features(x)
        heads = torch.stack([getattr(self, f"cat_head{k}")(f) for k in range(self.num_heads)], dim=1)
        if self.num_heads > 1:
            heads = torch.log_softmax(heads, dim=1)
        return self.bn(self.fc(heads.sum(dim=1))), f, heads


# ----------------------------------------------------------------------------- helpers
def machine() -> str:
    """CPU model, ISA, torch's kernel level, threads, load, and the library versions (one line)."""
    import onnxruntime

    return f"{describe_machine()}; onnxruntime {onnxruntime.__version__}; Python {platform.python_version()}"


def interleaved(fns: dict, iters: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin after a warm-up."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(iters):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def fake_faces(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Face-like RGB images (uint8) with a class-dependent mouth/eyebrow shape, and their labels."""
    import cv2

    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for i in range(n):
        y = i % 7
        img = np.full((size, size, 3), rng.integers(0, 255, 3), np.uint8)
        c = size // 2
        skin = tuple(int(v) for v in rng.integers(90, 230, 3))
        cv2.ellipse(img, (c, c), (size // 3, size * 2 // 5), 0, 0, 360, skin, -1)
        for ex in (size // 3, 2 * size // 3):
            cv2.circle(img, (ex, size * 2 // 5), size // 18, (30, 30, 30), -1)
            tilt = (y - 3) * size // 40
            cv2.line(img, (ex - size // 12, size // 3 - tilt), (ex + size // 12, size // 3 + tilt), (20, 20, 20), 3)
        mouth_h = 2 + y * size // 60
        cv2.ellipse(img, (c, size * 2 // 3), (size // 8 + y * 2, mouth_h), 0, 0, 180 if y % 2 else 360, (40, 0, 90), -1)
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        imgs.append(img)
        labels.append(y)
    return np.stack(imgs), np.array(labels)


def synth_faces(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The project's generated faces (dan.data.synth.render_image) when available, else fake_faces."""
    try:
        from dan.data.synth import render_image

        labels = np.arange(n) % 7
        imgs = np.stack([render_image(seed, i, int(y), size) for i, y in enumerate(labels)])
        return imgs, labels, "synthetic faces (dan.data.synth)"
    except ImportError:
        imgs, labels = fake_faces(n, size, seed)
        return imgs, labels, "generated face-like images"


def preprocess(imgs: np.ndarray, pre: Preprocessing) -> np.ndarray:
    from dan.preprocess import prepare_face

    return np.stack([prepare_face(im, pre) for im in imgs])


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32, help="batch of the throughput and training figures")
    p.add_argument("--iters", type=int, default=20, help="timed runs per inference path (training: a quarter)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: all cores)")
    p.add_argument("--quick", action="store_true", help="few iterations, no torch.compile for training")
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
    p.add_argument("--eval-images", type=int, default=280, help="images for the int8 agreement")
    p.add_argument("--agree-size", type=int, help="input size of the int8 agreement (default: the checkpoint's)")
    args = p.parse_args(argv)
    if args.quick:
        args.iters = min(args.iters, 8)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    size, batch, k = args.size, args.batch, args.heads
    bf16_native = bf16_support("cpu")
    args.bf16 = args.bf16 == "on" or (args.bf16 == "auto" and bf16_native.native)
    print(f"machine: {machine()}")
    print(f"bfloat16: {'timed' if args.bf16 else 'not timed'} ({bf16_native.reason})")
    print(f"settings: size {size}, batch {batch}, heads {k}, iters {args.iters}, threads {threads}\n", flush=True)

    # the same weights in the reference layout and in ours
    if args.checkpoint:
        ours = load_model(args.checkpoint)
        k, num_classes = ours.num_heads, ours.num_classes
        if ours.backbone_name != "resnet18":
            raise SystemExit("the baseline is ResNet-18: pass a resnet18 checkpoint")
    else:
        num_classes = 7
        ours = DAN(num_classes, k)
        ours.labels = LABEL_SETS["rafdb"]
    ckpt_size = ours.preprocessing.input_size
    ours.preprocessing = Preprocessing(input_size=size, mean=ours.preprocessing.mean, std=ours.preprocessing.std)
    ref = ReferenceDAN(num_classes, k)
    ref_keys = _reference_keys_from(ours, ref)
    ref.load_state_dict(ref_keys)

    # data: generated faces for int8 calibration (at the timed size) and the int8 agreement (at the
    # checkpoint's own input size, where a trained model is meaningful)
    agree_size = args.agree_size or (ckpt_size if args.checkpoint else size)
    n_eval = args.eval_images if not args.quick else 70
    calib_imgs, _, source = synth_faces(64, 100, seed=99)  # drawn at the data set's 100 px, then resized
    imgs, labels, _ = synth_faces(n_eval, 100, seed=7)
    mean, std = ours.preprocessing.mean, ours.preprocessing.std
    xcal = preprocess(calib_imgs, ours.preprocessing)
    xs = preprocess(imgs, Preprocessing(input_size=agree_size, mean=mean, std=std))
    ours.eval()
    ref.eval()
    x1 = torch.randn(1, 3, size, size)
    xb = torch.randn(batch, 3, size, size)

    rep = reparameterize(ours)
    rep_cl = reparameterize(ours, channels_last=True)
    with torch.inference_mode():
        check = {
            "fused": (ours(xb[:4]).logits - ref(xb[:4])[0]).abs().max().item(),
            "reparam": (rep(xb[:4]).logits - ref(xb[:4])[0]).abs().max().item(),
            "reparam+CL": (rep_cl(xb[:4].contiguous(memory_format=torch.channels_last)).logits - ref(xb[:4])[0])
            .abs()
            .max()
            .item(),
        }
    print("max |logit diff| vs baseline: " + ", ".join(f"{n} {v:.2g}" for n, v in check.items()), flush=True)

    # ---------------------------------------------------------------- inference paths
    work = tempfile.TemporaryDirectory()
    notes: list[str] = []
    if not args.no_infer:
        inf: dict[str, callable] = {}
        inf["baseline (per-head, eager)"] = lambda x: ref(x)[0]
        inf["fused heads, eager"] = lambda x: ours(x).logits
        inf["re-parameterised"] = lambda x: rep(x).logits
        inf["re-param + channels-last"] = lambda x: rep_cl(x.contiguous(memory_format=torch.channels_last)).logits
        if args.bf16:

            def bf16_logits(x: torch.Tensor) -> torch.Tensor:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return rep_cl(x.contiguous(memory_format=torch.channels_last)).logits.float()

            inf["re-param + CL + bf16 autocast (not lossless)"] = bf16_logits
            with torch.inference_mode():
                diff = (bf16_logits(xb[:4]) - ref(xb[:4])[0]).abs().max().item()
            notes.append(f"bf16 autocast inference: max |logit diff| vs baseline {diff:.2g}")
        if not args.no_compile:
            try:
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True
                t0 = time.time()
                compiled = torch.compile(rep_cl)
                with torch.inference_mode():
                    for x in (x1, xb):
                        out = compiled(x.contiguous(memory_format=torch.channels_last)).logits
                diff = (out[:4] - ref(xb[:4])[0]).abs().max().item()
                inf["re-param + CL + torch.compile"] = lambda x: (
                    compiled(x.contiguous(memory_format=torch.channels_last)).logits
                )
                notes.append(
                    f"torch.compile (inductor, freezing): compiled in {time.time() - t0:.0f} s, "
                    f"max |logit diff| {diff:.2g}"
                )
            except Exception as err:
                notes.append(f"torch.compile failed: {type(err).__name__}: {' '.join(str(err).split())[:160]}")
        agreement = None
        try:
            from dan.inference.export import export_onnx, quantize_onnx, top1_agreement
            from dan.inference.onnx_backend import OnnxBackend

            f32 = export_onnx(ours, Path(work.name) / "f32.onnx")
            i8 = quantize_onnx(f32, Path(work.name) / "int8.onnx", calib=xcal)
            # no spin-waiting: idle ONNX Runtime threads would steal the cores from the next (interleaved) path
            ort32 = OnnxBackend(f32, threads=threads, spinning=False)
            ort8 = OnnxBackend(i8, threads=threads, spinning=False)
            inf["ONNX Runtime float32"] = lambda x: ort32(x.numpy())
            inf["ONNX Runtime int8 (QDQ)"] = lambda x: ort8(x.numpy())
            with torch.inference_mode():
                diff = np.abs(ort32(xb[:4].numpy()) - ref(xb[:4])[0].numpy()).max()
            notes.append(f"ONNX Runtime float32 max |logit diff| vs baseline: {diff:.2g}")
            a32, a8 = ort32, ort8
            agree_files = (f32, i8)
            if agree_size != size:  # the same weights exported and calibrated at the agreement size
                m2 = copy.deepcopy(ours)
                m2.preprocessing = Preprocessing(input_size=agree_size, mean=mean, std=std)
                f2 = export_onnx(m2, Path(work.name) / "f32b.onnx")
                xcal2 = preprocess(synth_faces(64, 100, seed=99)[0], m2.preprocessing)
                a32, a8 = OnnxBackend(f2), OnnxBackend(quantize_onnx(f2, Path(work.name) / "int8b.onnx", calib=xcal2))
                agree_files = (f2, Path(work.name) / "int8b.onnx")
            a, b = a32(xs), a8(xs)
            agreement = top1_agreement(a, b)
            acc = float((a.argmax(1) == labels).mean())
            notes.append(
                f"int8 top-1 agreement with float32: {agreement:.2%} on {len(xs)} {source} at {agree_size} px "
                f"(calibrated on 64 other images; float32 accuracy on their labels {acc:.1%}"
                f"{'' if args.checkpoint else ', random weights: margins are tiny, pass --checkpoint'}); "
                f"int8 max |logit diff| {np.abs(a - b).max():.2g} (float32 logits span {a.max() - a.min():.2g})"
            )
        except Exception as err:
            traceback.print_exc()
            notes.append(f"ONNX Runtime paths failed: {type(err).__name__}: {err}")
        if "ONNX Runtime float32" in inf:
            try:
                import openvino as ov

                core = ov.Core()
                # f32 on purpose: OpenVINO runs float32 models in bf16 on CPUs that have it unless told not to
                config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
                if threads:
                    config["INFERENCE_NUM_THREADS"] = threads
                ov32, ov8 = (core.compile_model(str(f), "CPU", config) for f in (f32, i8))
                inf["OpenVINO float32 (the ONNX file)"] = lambda x: ov32(x.numpy())[ov32.output(0)]
                inf["OpenVINO int8 (the int8 ONNX file)"] = lambda x: ov8(x.numpy())[ov8.output(0)]
                with torch.inference_mode():
                    d32 = np.abs(ov32(xb[:4].numpy())[ov32.output(0)] - ref(xb[:4])[0].numpy()).max()
                c32, c8 = (core.compile_model(str(f), "CPU", config) for f in agree_files)
                a, b = c32(xs)[c32.output(0)], c8(xs)[c8.output(0)]
                notes.append(
                    f"OpenVINO {ov.__version__}: float32 max |logit diff| vs baseline {d32:.2g}; int8 top-1 "
                    f"agreement with float32 {top1_agreement(a, b):.2%} on the {len(xs)} faces above"
                )
            except ImportError:
                notes.append("OpenVINO not installed (pip install openvino): not timed")
            except Exception as err:
                notes.append(f"OpenVINO failed: {type(err).__name__}: {' '.join(str(err).split())[:160]}")

        rows = []
        with torch.inference_mode():
            lat = interleaved({n: (lambda f=f: f(x1)) for n, f in inf.items()}, args.iters, warmup=3)
            thr_iters = max(3, args.iters // 4)
            thr = interleaved({n: (lambda f=f: f(xb)) for n, f in inf.items()}, thr_iters, warmup=1)
        base_lat, base_thr = lat[next(iter(inf))], thr[next(iter(inf))]
        for n in inf:
            rows.append((n, lat[n] * 1e3, base_lat / lat[n], batch / thr[n], base_thr / thr[n]))

        if "ONNX Runtime float32" in inf:  # ONNX Runtime's default (spinning threads), timed on its own
            spin = {n: OnnxBackend(p, threads=threads) for n, p in (("float32", f32), ("int8", i8))}
            x1n = x1.numpy()
            solo = {n: interleaved({n: lambda b=b: b(x1n)}, args.iters, warmup=3)[n] for n, b in spin.items()}
            notes.append(
                "ONNX Runtime with its default spin-waiting threads, timed alone at batch 1: "
                + ", ".join(f"{n} {v * 1e3:.1f} ms ({base_lat / v:.2f}x)" for n, v in solo.items())
            )
            del spin

        print("\n### Inference\n")
        print(f"| path | batch 1 latency (ms) | speed-up | batch {batch} throughput (img/s) | speed-up |")
        print("|---|---:|---:|---:|---:|")
        for n, ms, r1, ips, r2 in rows:
            print(f"| {n} | {ms:.1f} | {r1:.2f}x | {ips:.1f} | {r2:.2f}x |")

    # ---------------------------------------------------------------- training step
    if not args.no_train:
        print("\n### Training step (forward + CE + affinity + partition loss + backward + SGD)\n", flush=True)
        train_rows = training_benchmark(
            ref,
            ours,
            size,
            batch,
            num_classes,
            max(3, args.iters // 4),
            compile_=not (args.quick or args.no_compile),
            notes=notes,
            bf16=args.bf16,
        )
        print(f"| path | batch {batch} images/s | speed-up |")
        print("|---|---:|---:|")
        base = train_rows[0][1]
        for n, ips in train_rows:
            print(f"| {n} | {ips:.1f} | {ips / base:.2f}x |")

    print("\nnotes:")
    for n in notes:
        print(f"- {n}")
    work.cleanup()  # after the training figures: the ONNX files were in use until then
    return 0


def _reference_keys_from(ours: DAN, ref: ReferenceDAN) -> dict:
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
