"""What the machine can do: native bfloat16 decides ``precision: auto``; benchmark headers say where they ran."""

from __future__ import annotations

import pytest
import torch

from dan import system


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU with the given flags and torch kernel level."""

    def pretend(flags: str, capability: str) -> None:
        monkeypatch.setattr(system, "_cpuinfo", lambda: ("Pretend EPYC", frozenset(flags.split())))
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: "avx512_bf16" in flags)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    return pretend


def test_explicit_precision_is_kept(cpu) -> None:
    cpu("avx2", "AVX2")
    assert system.resolve_precision("bf16-mixed") == ("bf16-mixed", "")
    assert system.resolve_precision("32-true") == ("32-true", "")


def test_auto_is_float32_without_native_bfloat16(cpu, monkeypatch) -> None:
    cpu("avx avx2 fma", "AVX2")  # an AVX2-only EPYC: bf16 would be emulated, about 7x slower
    precision, why = system.resolve_precision(None)
    assert precision == "32-true" and "without native bfloat16" in why
    cpu("avx2 avx512f avx512_bf16", "AVX512")
    assert system.resolve_precision("auto")[0] == "bf16-mixed"
    cpu("avx2 avx512f avx512_bf16", "AVX2")  # torch held at AVX2 kernels (ATEN_CPU_CAPABILITY)
    assert system.resolve_precision(None) == ("32-true", system.bf16_support().reason)
    assert "ATEN_CPU_CAPABILITY" in system.bf16_support().reason
    cpu("avx2 avx512f avx512_bf16", "AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN capped below bfloat16
    assert system.resolve_precision(None)[0] == "32-true" and "ONEDNN_MAX_CPU_ISA" in system.bf16_support().reason
    cpu("avx2 amx_bf16 amx_tile", "AVX512")
    assert system.resolve_precision(None)[0] == "bf16-mixed"


def test_describe_machine_names_cpu_isa_threads_and_load(cpu) -> None:
    cpu("fpu avx2 fma avx512f avx512_vnni", "AVX512")
    line = system.describe_machine(threads=3)
    assert line.startswith("CPU: Pretend EPYC") and "avx2 fma avx512f avx512_vnni" in line
    assert "kernels AVX512" in line and "3 threads" in line and "load " in line
