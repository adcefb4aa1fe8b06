"""``--device auto|cpu|cuda[:N]``: the words, the pick (auto on this CPU machine, a GPU faked where one is
needed), the one-line errors, ONNX Runtime's provider fallback, and where the torch runtime puts the model
and its inputs (cpu and meta only: no GPU is needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dan.cli.main import main
from dan.errors import DanError
from dan.system import DeviceChoice, pick_device, torch_device
from dan.vocab import DEVICES, parse_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch sees no CUDA GPU (whatever this machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch says it sees one CUDA GPU ("Fake GPU"); nothing may run on it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")


@pytest.fixture(scope="module")
def onnx_file(tiny_model, tmp_path_factory: pytest.TempPathFactory):
    from dan.export.onnx import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("device") / "tiny.onnx")


def test_device_words() -> None:
    assert DEVICES == ("auto", "cpu", "cuda")
    for text, value in [
        ("auto", "auto"),
        ("CPU", "cpu"),
        (" cuda ", "cuda"),
        ("cuda:1", "cuda:1"),
        ("cuda:01", "cuda:1"),
    ]:
        assert parse_device(text) == value
    for bad in ("gpu", "cuda:x", "cuda:", "mps", "", "cuda:-1"):
        with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
            parse_device(bad)


def test_auto_is_the_cpu_without_a_gpu_and_says_why(no_gpu) -> None:
    choice = pick_device("auto")
    assert choice.device == "cpu" and not choice.is_cuda
    assert choice.reason.startswith("auto -> cpu: no CUDA GPU (")
    assert pick_device(None) == choice and pick_device("cpu").reason == "cpu (as asked)"
    assert torch_device("auto")[0] == torch.device("cpu")


def test_cuda_without_a_gpu_is_one_line(no_gpu) -> None:
    for spec in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(DanError, match=r"^device 'cuda(:1)?': no CUDA GPU here \(.*\); ask for cpu or auto") as err:
            pick_device(spec)
        assert "\n" not in str(err.value)
    with pytest.raises(DanError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_auto_takes_the_gpu_when_there_is_one(fake_gpu) -> None:
    choice = pick_device("auto")
    assert choice.device == "cuda:0" and choice.index == 0
    assert choice.reason == "auto -> cuda:0 (Fake GPU): a CUDA GPU is available"
    assert pick_device("cuda").device == "cuda:0"
    with pytest.raises(DanError, match=r"device 'cuda:2': there is no GPU 2 \(this machine has 1: cuda:0 to cuda:0\)"):
        pick_device("cuda:2")
    assert torch_device(torch.device("meta")) == (torch.device("meta"), "meta (as asked)")  # other kinds pass


def test_torch_backend_puts_model_and_inputs_on_its_device(tiny_model) -> None:
    from dan.runtime.torch import TorchBackend

    x = np.zeros((2, 3, 32, 32), np.float32)
    on_cpu = TorchBackend(tiny_model, device=pick_device("cpu"))
    assert on_cpu.torch_device == torch.device("cpu") and on_cpu._tensor(x).device == torch.device("cpu")
    assert {p.device.type for p in on_cpu.model.parameters()} == {"cpu"}
    assert on_cpu(x).shape == (2, 7)
    meta = TorchBackend(tiny_model, device=DeviceChoice("meta", "meta (as asked)"))
    assert meta.torch_device == torch.device("meta") and meta._tensor(x).device == torch.device("meta")
    assert {p.device.type for p in meta.model.parameters()} == {"meta"}
    assert {b.device.type for b in meta.model.buffers()} == {"meta"}
    assert {p.device.type for p in tiny_model.parameters()} == {"cpu"}  # the caller's model stays where it was


def test_load_model_and_backends_refuse_a_missing_gpu(no_gpu, tiny_checkpoint, onnx_file) -> None:
    import dan
    from dan.runtime.loader import load_backend

    model = dan.load_model(tiny_checkpoint, device="auto")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    for load in (
        lambda: dan.load_model(tiny_checkpoint, device="cuda"),
        lambda: load_backend(tiny_checkpoint, device="cuda"),
        lambda: load_backend(onnx_file, device="cuda:0"),
    ):
        with pytest.raises(DanError, match="no CUDA GPU here"):
            load()
    assert load_backend(onnx_file, device="auto").device_reason.startswith("auto -> cpu: no CUDA GPU")


def test_onnx_without_the_cuda_provider_says_why_and_runs_on_the_cpu(fake_gpu, onnx_file, monkeypatch) -> None:
    import onnxruntime

    from dan.runtime.onnx import OnnxBackend

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    backend = OnnxBackend(onnx_file, device=pick_device("auto"))
    assert backend.providers == ("CPUExecutionProvider",)
    reason = backend.device_reason
    assert reason.startswith("cpu: cuda:0 was picked, but this onnxruntime has no CUDA provider")
    assert "pip install 'dan-fer[gpu]'" in reason and "pip uninstall onnxruntime" in reason and "\n" not in reason
    assert backend(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 7)


def test_onnx_cuda_provider_that_does_not_start_falls_back(fake_gpu, onnx_file, monkeypatch, capfd) -> None:
    import onnxruntime

    from dan.runtime.onnx import OnnxBackend, onnx_providers

    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]  # as onnxruntime-gpu lists them
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    providers, reason = onnx_providers(onnxruntime, pick_device("cuda"), tf32=False)
    assert providers == [("CUDAExecutionProvider", {"device_id": "0", "use_tf32": "0"}), "CPUExecutionProvider"]
    assert reason == "cuda:0 (Fake GPU), ONNX Runtime's CUDA provider"
    capfd.readouterr()
    backend = OnnxBackend(onnx_file, device=pick_device("cuda"))  # no CUDA provider here: it cannot start
    assert backend.providers == ("CPUExecutionProvider",)
    assert backend.device_reason.startswith("cpu: ONNX Runtime's CUDA provider did not start")
    out, err = capfd.readouterr()
    assert out == "" and "CUDAExecutionProvider" not in err  # its banner and warning are not shown


def test_cli_says_where_the_model_runs(no_gpu, tiny_checkpoint, face_tile, tmp_path, capsys) -> None:
    import cv2

    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(np.ascontiguousarray(face_tile), cv2.COLOR_RGB2BGR))
    argv = ["predict", str(image), "--checkpoint", str(tiny_checkpoint), "--detector", "none"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "device: auto -> cpu: no CUDA GPU (" in err
    assert main([*argv, "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dan predict: error: device 'cuda': no CUDA GPU here")
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--output", str(tmp_path / "m.onnx"), "--verify",
                 "--device", "cuda:1"]) == 1  # fmt: skip
    assert "dan export: error: device 'cuda:1': no CUDA GPU here" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "x.jpg", "--checkpoint", "m.pt"],
        ["demo", "--checkpoint", "m.pt"],
        ["serve", "--checkpoint", "m.pt"],
        ["evaluate", "--checkpoint", "m.pt", "--format", "rafdb", "--root", "x"],
        ["export", "--checkpoint", "m.pt", "--output", "m.onnx", "--verify"],
    ],
)
def test_every_command_takes_the_device_words(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--device", "gpu"])
    assert done.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "argument --device: unknown device 'gpu': use auto, cpu, cuda or cuda:N (N: a GPU index)" in err
