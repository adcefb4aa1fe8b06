"""What the machine can do: the CPU, its vector instructions, native bfloat16, the GPU a model runs on,
and a one-line summary.

Training, the benchmarks and the demo choose bfloat16 autocast only where the hardware computes in
bfloat16 natively (a CPU with AVX512-BF16 or AMX, or a GPU that supports it). Elsewhere bfloat16 is
emulated and several times slower than float32 (measured: about 7x on an AVX2-only AMD EPYC), so
``auto`` means float32 there.

Torch is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from dan.errors import DanError
from dan.vocab import parse_device

if TYPE_CHECKING:
    import torch

__all__ = [
    "BF16Support",
    "DeviceChoice",
    "bf16_support",
    "cpu_flags",
    "cpu_model",
    "describe_machine",
    "pick_device",
    "torch_device",
    "resolve_precision",
]

_ISA_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still allow native bfloat16 instructions
_ONEDNN_BF16 = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_2_512", "ALL")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model = ""
    flags: frozenset[str] = frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor name elsewhere)."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` is unavailable)."""
    return _cpuinfo()[1]


@dataclass(frozen=True)
class BF16Support:
    """Whether bfloat16 is native on a device, and why.

    Attributes:
        native: True when bfloat16 autocast runs on native instructions (fast).
        reason: A short human-readable explanation.
    """

    native: bool
    reason: str


def bf16_support(device: str = "cpu") -> BF16Support:
    """Whether bfloat16 autocast is native on ``device`` (``"cpu"`` or ``"cuda"``).

    On the CPU it must be native in the hardware (AVX512-BF16 or AMX) and usable by torch: torch's
    kernel dispatch at AVX512 or above and oneDNN not capped below bfloat16 (``ATEN_CPU_CAPABILITY``,
    ``ONEDNN_MAX_CPU_ISA``).
    """
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return BF16Support(False, "no CUDA device")
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return BF16Support(True, f"{name} supports bfloat16")
        return BF16Support(False, f"{name} has no native bfloat16")
    flags = cpu_flags()
    hw = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    if not hw:
        try:
            hw = ["avx512_bf16"] if torch.cpu._is_avx512_bf16_supported() else []
        except AttributeError:  # pragma: no cover - older torch
            hw = []
    capability = torch.backends.cpu.get_cpu_capability()
    if not hw:
        return BF16Support(False, f"CPU without native bfloat16 ({capability}): bfloat16 would be emulated, slowly")
    if not capability.startswith(("AVX512", "AMX")):
        return BF16Support(False, f"torch runs {capability} kernels here (ATEN_CPU_CAPABILITY), not bfloat16 ones")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap not in _ONEDNN_BF16:
        return BF16Support(False, f"oneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA), below bfloat16")
    return BF16Support(True, f"CPU with native bfloat16 ({', '.join(hw)})")


def resolve_precision(requested: str | int | None, accelerator: str = "cpu") -> tuple[str | int, str]:
    """Lightning's precision for ``requested``, with ``None`` / ``"auto"`` decided by the hardware.

    Args:
        requested: A Lightning precision (``"32-true"``, ``"bf16-mixed"``, ...), or None / ``"auto"``.
        accelerator: ``"cpu"`` or ``"cuda"``: where training runs.

    Returns:
        ``(precision, why)``: bfloat16 mixed precision where it is native, else ``"32-true"``, and a
        one-line reason (empty when ``requested`` was explicit).
    """
    if requested not in (None, "auto"):
        return requested, ""
    support = bf16_support(accelerator)
    return ("bf16-mixed" if support.native else "32-true"), support.reason


@dataclass(frozen=True)
class DeviceChoice:
    """The device a model runs on, and why (what ``--device`` printed).

    Attributes:
        device: ``"cpu"`` or ``"cuda:N"``: a torch device string.
        reason: One line: what was picked and why (``auto -> cpu: no CUDA GPU (...)``).
    """

    device: str
    reason: str

    @property
    def is_cuda(self) -> bool:
        """Whether the choice is a CUDA GPU."""
        return self.device.startswith("cuda")

    @property
    def index(self) -> int:
        """The GPU's index (0 on the CPU)."""
        return int(self.device.partition(":")[2] or 0)


def _no_cuda_reason() -> str:
    import torch

    if torch.version.cuda is None:
        return "this PyTorch is a CPU-only build"
    return "torch.cuda.is_available() is False: no GPU or no NVIDIA driver found"


def pick_device(spec: object = "auto") -> DeviceChoice:
    """The device ``spec`` names, checked against the machine: ``auto`` takes the GPU when there is one.

    Args:
        spec: ``"auto"`` (CUDA GPU 0 when PyTorch sees one, else the CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"`` (:func:`dan.vocab.parse_device`), or a ``torch.device`` of those kinds;
            None means ``"auto"``.

    Returns:
        The :class:`DeviceChoice`, with a one-line reason.

    Raises:
        DanError: An unknown name, a GPU asked for where PyTorch sees none, or a GPU index past the last.
    """
    import torch

    try:
        value = parse_device("auto" if spec is None else str(spec))
    except ValueError as err:
        raise DanError(str(err)) from None
    if value == "cpu":
        return DeviceChoice("cpu", "cpu (as asked)")
    available = torch.cuda.is_available()
    if value == "auto":
        if not available:
            return DeviceChoice("cpu", f"auto -> cpu: no CUDA GPU ({_no_cuda_reason()})")
        return DeviceChoice("cuda:0", f"auto -> cuda:0 ({torch.cuda.get_device_name(0)}): a CUDA GPU is available")
    if not available:
        raise DanError(f"device {value!r}: no CUDA GPU here ({_no_cuda_reason()}); ask for cpu or auto instead")
    index, count = int(value.partition(":")[2] or 0), torch.cuda.device_count()
    if index >= count:
        raise DanError(
            f"device {value!r}: there is no GPU {index} (this machine has {count}: cuda:0 to cuda:{count - 1})"
        )
    return DeviceChoice(f"cuda:{index}", f"cuda:{index} ({torch.cuda.get_device_name(index)})")


def torch_device(device: object) -> tuple[torch.device, str]:
    """The ``torch.device`` of a ``device=`` argument, and the one-line reason for it.

    Names (and ``torch.device`` objects of type cpu or cuda) go through :func:`pick_device`; a
    ``torch.device`` of another type (``meta``, ``mps``) is used as it is.

    Raises:
        DanError: As :func:`pick_device`.
    """
    import torch

    if isinstance(device, torch.device) and device.type not in ("cpu", "cuda"):
        return device, f"{device} (as asked)"
    choice = pick_device(device)
    return torch.device(choice.device), choice.reason


def describe_machine(threads: int | None = None) -> str:
    """One line for benchmark headers: CPU model, its vector ISA, torch's kernel level, threads, load.

    Args:
        threads: The thread count the measurement uses (default: torch's current setting).
    """
    import torch

    flags = cpu_flags()
    isa = [f for f in _ISA_FLAGS if f in flags] or ["unknown"]
    threads = threads or torch.get_num_threads()
    try:
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        load = "load n/a"
    return (
        f"CPU: {cpu_model()} ({os.cpu_count()} logical cores; {' '.join(isa)}); torch {torch.__version__} "
        f"kernels {torch.backends.cpu.get_cpu_capability()}; {threads} threads; {load}"
    )
