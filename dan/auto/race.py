"""``--backend auto``'s race: the fastest of several runtimes of one model that agree with PyTorch.

:func:`race` takes the re-parameterised PyTorch backend (the reference: the same function to float32
rounding as the checkpoint) and candidate backends of the same weights (:func:`dan.auto.open.fastest_backend`
builds ONNX Runtime and OpenVINO ones from the export cache, float32 and, when there is one, int8). A
short timed probe (batch 1 at the model's input size) decides among the
candidates that agree with PyTorch; its result is kept in ``$DAN_HOME/probe.json`` under a key of the
CPU, its vector ISA, the library versions, the thread count and the model, so it runs once per
machine and model.

What "agree" means (:func:`float_disagreement`, :func:`int8_disagreement`):

- a float32 runtime computes the same function in another order: on the probe batch (a random image,
  and the probe faces when given) its logits are within :data:`LOGIT_RTOL` of the logits' scale
  (the largest ``|logit|``, at least 1), its probabilities within :data:`PROB_TOL`, and its top-1
  class is torch's wherever torch's top two are further apart than that. Relative, so a model with
  large logits (a randomly initialised reference-layout file reaches ``|logit|`` 3,800, where float32
  rounding alone differs by 4e-3) keeps its faithful runtimes;
- an int8 runtime is an approximation: its top-1 class is torch's on at least :data:`INT8_AGREEMENT`
  of the probe faces (real-looking inputs; random noise says nothing about int8). Without probe faces
  int8 does not race.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch

from dan.errors import DanError
from dan.fileio import atomic_write
from dan.paths import dan_home
from dan.runtime.backend import Backend, softmax
from dan.system import cpu_flags, cpu_model

__all__ = [
    "INT8_AGREEMENT",
    "LOGIT_RTOL",
    "PROB_TOL",
    "RUNTIME_NAMES",
    "float_disagreement",
    "int8_disagreement",
    "probe_key",
    "race",
]

RUNTIME_NAMES = {
    "torch": "torch, re-parameterised",
    "onnx": "ONNX Runtime float32",
    "openvino": "OpenVINO float32",
    "onnx-int8": "ONNX Runtime int8",
    "openvino-int8": "OpenVINO int8",
}
"""How :func:`race` names each candidate in its ``auto_reason``; names ending ``-int8`` are int8 runtimes."""

LOGIT_RTOL = 1e-4
"""Largest float32 logit difference from torch, as a fraction of the logits' scale (float32 rounding: ~1e-6)."""

PROB_TOL = 1e-3
"""Largest float32 probability difference from torch."""

INT8_AGREEMENT = 0.99
"""Smallest fraction of probe faces on which an int8 runtime's top-1 class must be torch's."""

_RULE = "agree2"  # in the probe key: picks made under an older agreement rule are probed again


def _time(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, runs: int = 8) -> float:
    fn(x)  # warm-up
    fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _batched(runner: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = 16) -> np.ndarray:
    """``runner`` over ``x`` in batches of ``batch`` (the probe faces at 224 px would need gigabytes at once)."""
    return np.concatenate([runner(x[i : i + batch]) for i in range(0, len(x), batch)])


def float_disagreement(expected: np.ndarray, got: np.ndarray) -> str | None:
    """Why float32 logits ``got`` (N, C) are not a faithful copy of ``expected``, or None when they are."""
    scale = max(1.0, float(np.abs(expected).max()))
    tol = LOGIT_RTOL * scale
    diff = float(np.abs(got - expected).max())
    if not diff <= tol:
        return f"logits differ by {diff:.1e}, above {tol:.1e} ({LOGIT_RTOL:g} of their scale {scale:.3g})"
    prob = float(np.abs(softmax(got) - softmax(expected)).max())
    if not prob <= PROB_TOL:
        return f"probabilities differ by {prob:.1e}, above {PROB_TOL:g}"
    top2 = np.sort(expected, axis=1)[:, -2:]  # (N, 2)
    clear = top2[:, 1] - top2[:, 0] > 2 * tol
    if (got.argmax(1) != expected.argmax(1))[clear].any():
        return "top-1 class differs"
    return None


def int8_disagreement(expected: np.ndarray, got: np.ndarray) -> str | None:
    """Why int8 logits ``got`` (N, C) on probe faces are too far from ``expected``, or None when they agree."""
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    if agreement < INT8_AGREEMENT:
        return f"top-1 agrees with torch on {agreement:.1%} of {len(expected)} probe faces, below {INT8_AGREEMENT:.0%}"
    return None


def probe_key(model_key: str, size: int, threads: int) -> str:
    """The probe cache's key: CPU, vector ISA, runtime library versions, threads, input size, model, rule."""
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma"))))
    versions = [f"torch {torch.__version__}"]
    for name, short in (("onnxruntime", "ort"), ("openvino", "openvino")):
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions.append(f"{short} {getattr(module, '__version__', '?')}")
    return f"{cpu_model()}|{flags}|{'|'.join(versions)}|{threads}|{size}|{model_key}|{_RULE}"


def _probe(runners: Mapping[str, Backend], faces: Callable[[], np.ndarray] | None) -> dict:
    """Time every runner and check each against ``runners["torch"]``: the probe cache's entry."""
    reference = runners["torch"]
    size = reference.preprocessing.input_size
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    probe = faces() if faces is not None else None
    ms = {name: _time(runner, x) for name, runner in runners.items()}
    off: dict[str, str] = {}
    expected = reference(x)
    expected_faces = _batched(reference, probe) if probe is not None else None
    for name, runner in runners.items():
        reason: str | None = None
        if name.endswith("-int8"):
            if probe is None or expected_faces is None:
                reason = "not raced: no probe faces to check it on"
            else:
                reason = int8_disagreement(expected_faces, _batched(runner, probe))
        elif name != "torch":
            got, want = runner(x), expected
            if probe is not None and expected_faces is not None:
                got, want = np.concatenate([got, _batched(runner, probe)]), np.concatenate([want, expected_faces])
            reason = float_disagreement(want, got)
        if reason:
            off[name] = reason
    pick = min((name for name in runners if name not in off), key=lambda name: ms[name])  # torch always agrees
    return {"pick": pick, "ms": ms, "off": off}


def race(
    reference: Backend,
    candidates: Mapping[str, Callable[[], Backend | None]],
    key: str,
    faces: Callable[[], np.ndarray] | None = None,
) -> Backend:
    """The fastest of ``reference`` and ``candidates`` that agree with ``reference`` (see the module docstring).

    Args:
        reference: The re-parameterised PyTorch backend (named ``torch``); always faithful.
        candidates: Other runtimes of the same weights, by a name of :data:`RUNTIME_NAMES` (``onnx``,
            ``openvino``, ``onnx-int8``, ``openvino-int8``): each a function that opens it (None: it cannot
            run here). On a cached pick only the picked one is opened, so a command starts quickly.
        key: The probe cache key (:func:`probe_key`): a cached pick for it is used without timing.
        faces: Returns probe faces (N, 3, S, S) prepared with the model's preprocessing; called only
            when the probe runs. Without it, int8 candidates do not race.

    Returns:
        The picked backend; its ``auto_reason`` says what was picked and why.
    """
    names = ["torch", *candidates]
    probe_file = dan_home() / "probe.json"
    try:
        cache = json.loads(probe_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    choice = cache.get(key)
    picked: Backend | None = None
    if isinstance(choice, dict) and choice.get("pick") in names:
        picked = reference if choice["pick"] == "torch" else candidates[choice["pick"]]()
    if picked is None or not isinstance(choice, dict):  # no cached pick (or it cannot run now): probe them all
        runners: dict[str, Backend] = {"torch": reference}
        for name, make in candidates.items():
            runner = make()
            if runner is not None:
                runners[name] = runner
        choice = _probe(runners, faces)
        cache[key] = choice
        try:
            atomic_write(probe_file, json.dumps(cache, indent=1), "probe cache")
        except DanError:
            pass  # a read-only cache only costs a probe next time
        picked = runners[choice["pick"]]
    ms, off = choice.get("ms", {}), choice.get("off", {})
    how = ", ".join(f"{RUNTIME_NAMES[name]} {ms[name]:.1f} ms" for name in names if name in ms) + " at batch 1"
    reasons = [f"{RUNTIME_NAMES[n]}: {why}" for n, why in off.items() if n in RUNTIME_NAMES]
    if reasons:
        how += "; " + "; ".join(reasons)
    picked.auto_reason = f"{RUNTIME_NAMES[choice['pick']]} ({how})"
    return picked
