"""Static int8 settings side by side: top-1 agreement with float32, where the flips fall, and latency.

Each variant quantises the same float32 export of ``--checkpoint`` with onnxruntime's ``quantize_static``
(QDQ, per-channel, uint8 activations, the heads' small matrix products left in float32 as
:func:`dan.export.quantize.float_nodes` says) and changes one setting:

- ``minmax8``: 8-bit int8 weights, MinMax activation ranges (``dan export --int8`` before 2026-12-03);
- ``minmax7``: 7-bit weights (``reduce_range``), MinMax;
- ``stem8``: 8-bit weights with the first convolution left in float32;
- ``u8u8``: uint8 weights (onnxruntime's U8U8 kernels);
- ``pct7``: 7-bit weights, ranges from each tensor's 99.999th percentile (what ``dan export --int8``
  writes now, :mod:`dan.export.quantize`).

Calibration: the generated faces ``dan export --int8`` draws (:data:`dan.export.faces.CALIBRATION_FACES`
of seed :data:`dan.export.faces.CALIBRATION_SEED`, the first half). Agreement is on the benchmark's face
sets, none calibrated on (:func:`scripts.common.int8.face_sets`); a flip's margin is float32's top-1 minus
top-2 probability on that face (near 0: a near-tie). Latency: the median of ``--iters`` batch-1 calls,
each variant interleaved with float32. Usage::

    python -m scripts.bench.int8_variants --checkpoint runs/quickstart/checkpoints/best.ckpt \
        [--variants pct7] [--size 224]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from dan.export import export_onnx, top1_agreement
from dan.export.faces import CALIBRATION_FACES, CALIBRATION_SEED
from dan.export.quantize import float_nodes, quantize_static_qdq
from dan.export.verify import run_batched
from dan.models.loading import load_model
from dan.synthface import prepared_faces
from scripts.common.int8 import face_sets
from scripts.common.measure import interleaved, machine_header, markdown_table

VARIANTS = ("minmax8", "minmax7", "stem8", "u8u8", "pct7")


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]


def _quantise(variant: str, pre: Path, out: Path, calib: np.ndarray) -> Path:
    import onnx

    graph = onnx.load(str(pre)).graph
    exclude = float_nodes(graph, {})
    if variant == "stem8":
        exclude.append(next(n.name for n in graph.node if n.op_type == "Conv"))
    seven_bit = variant in ("minmax7", "pct7")
    quantize_static_qdq(
        pre, out, calib, exclude, reduce_range=seven_bit, percentile=variant == "pct7", uint8_weights=variant == "u8u8"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a trained DAN (its margins make agreement meaningful)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--size", type=int, help="input side in pixels (default: the checkpoint's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=30, help="timed batch-1 calls per variant")
    p.add_argument("--generated", type=int, default=128, help="generated faces of seed 1 in the agreement sets")
    args = p.parse_args(argv)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    print(machine_header(args.threads, ("onnxruntime",)))
    model = load_model(args.checkpoint)
    if args.size:  # the same weights at another input size (the network is fully convolutional)
        model.preprocessing = dataclasses.replace(model.preprocessing, input_size=args.size)
    _, sets = face_sets(model, args.generated)
    calib = prepared_faces(CALIBRATION_FACES, model.preprocessing, CALIBRATION_SEED)[: CALIBRATION_FACES // 2]
    calib = np.ascontiguousarray(calib, np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        float32 = _session(export_onnx(model, work / "float32.onnx"), args.threads)
        quant_pre_process(str(work / "float32.onnx"), str(work / "pre.onnx"))
        want = {k: run_batched(float32, v) for k, v in sets.items()}
        x = next(iter(sets.values()))[:1]
        for variant in args.variants:
            try:
                run = _session(_quantise(variant, work / "pre.onnx", work / f"{variant}.onnx", calib), args.threads)
            except ValueError as e:  # percentile ranges of a tensor that barely varies (a tiny model, few faces)
                rows.append([variant, *(["-"] * len(sets)), "-", f"not quantised: {e}", "-", "-"])
                continue
            agree, margins = [], []
            for k, faces in sets.items():
                got, ref = run_batched(run, faces), want[k]
                agree.append(top1_agreement(ref, got))
                prob = np.exp(ref - ref.max(1, keepdims=True))
                prob = np.sort(prob / prob.sum(1, keepdims=True), 1)  # (N, C) ascending
                flips = ref.argmax(1) != got.argmax(1)
                margins += list(prob[flips, -1] - prob[flips, -2])
            total = sum(a * len(f) for a, f in zip(agree, sets.values())) / sum(len(f) for f in sets.values())
            spread = f"{min(margins):.3f} - {max(margins):.3f}" if margins else "-"
            paths = {"int8": lambda run=run: run(x), "float32": lambda: float32(x)}
            sec = interleaved(paths, args.iters)  # s per call
            ms, ms32 = 1000 * sec["int8"], 1000 * sec["float32"]
            rows.append([variant, *(f"{a:.1%}" for a in agree), f"{total:.1%}", spread, f"{ms:.2f}", f"{ms32:.2f}"])
    size = model.preprocessing.input_size
    print(f"\nweights {args.checkpoint}; {size} px; calibrated on {len(calib)} generated faces", end="")
    print(f" (seed {CALIBRATION_SEED})\n")
    header = ["variant", *sets, "all", "flips' top-1 margins", "int8 ms", "float32 ms"]
    print(markdown_table(header, rows, right=tuple(range(1, len(header)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
