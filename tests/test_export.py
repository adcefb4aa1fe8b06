"""Export (ONNX float32/int8, torch.export .pt2), the ONNX Runtime and .pt2 backends and ``dan export``."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import onnx
import pytest
import torch

from dan import DAN
from dan.cli.main import main as dan_main
from dan.errors import DanError
from dan.export import (
    export_checkpoint,
    export_onnx,
    load_images,
    quantize_onnx,
    top1_agreement,
)
from dan.models.checkpoint import save_model
from dan.preprocess import Preprocessing
from dan.runtime.loader import load_backend
from dan.runtime.onnx import OnnxBackend
from dan.runtime.pt2 import Pt2Backend, check_pt2_archive

from conftest import settle_batchnorm

torch.set_num_threads(2)
SIZE = 64
RAFDB = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def _model() -> DAN:
    """A small DAN (2 heads, 64 px) whose BatchNorm statistics come from data and whose logits differ."""
    torch.manual_seed(0)
    model = settle_batchnorm(DAN(num_classes=7, num_heads=2), SIZE)
    model.labels = RAFDB
    model.preprocessing = Preprocessing(input_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    return model.eval()


def _faces(folder, n: int = 24) -> None:
    """Face-like pictures of different sizes: a skin-coloured ellipse, eyes and a mouth on a background."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = int(rng.integers(50, 120)), int(rng.integers(50, 120))
        img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
        skin = tuple(int(v) for v in rng.integers(90, 230, 3))
        cv2.ellipse(img, (w // 2, h // 2), (w // 3, h * 2 // 5), 0, 0, 360, skin, -1)
        for ex in (w // 3, 2 * w // 3):
            cv2.circle(img, (ex, h * 2 // 5), max(2, w // 16), (30, 30, 30), -1)
        mouth = (w // 8, int(rng.integers(1, h // 8)))
        cv2.ellipse(img, (w // 2, h * 2 // 3), mouth, 0, 0, 180 * (1 + i % 2), (40, 0, 90), -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"face_{i:02d}.{'png' if i % 2 else 'jpg'}"), img)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = _model()
    ckpt = save_model(model, root / "model.pt")
    _faces(root / "faces")
    onnx_path = export_onnx(model, root / "model.onnx")
    return model, ckpt, root / "faces", onnx_path


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal to float32 rounding: 1e-4 of the largest logit (at least 1e-4)."""
    return float(np.abs(got - want).max()) <= 1e-4 * max(1.0, float(np.abs(want).max()))


def _torch(model: DAN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x), return_attention=True)
    return out.logits.numpy(), out.attention.numpy()


def test_onnx_matches_pytorch_with_dynamic_batch_and_metadata(setup) -> None:
    model, _, faces, path = setup
    backend = OnnxBackend(path, threads=2, spinning=False)
    assert backend.labels == RAFDB
    assert backend.preprocessing == model.preprocessing
    assert backend.output_names == ("logits", "attention")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["labels"]) == list(RAFDB)
    assert json.loads(props["preprocessing"])["input_size"] == SIZE
    assert json.loads(props["dan"])["model_config"]["num_heads"] == 2
    rng = np.random.default_rng(1)
    for n in (1, 5):
        x = rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)
        logits, attention = _torch(model, x)
        got = backend(x)
        assert got.shape == (n, 7) and got.dtype == np.float32
        assert _close(got, logits)
        got2, att, _ = backend.outputs(x, attention=True)
        assert np.array_equal(got2, got) and np.array_equal(backend.outputs(x, attention=True).attention, att)
        assert np.abs(att - attention).max() <= 1e-5 * np.abs(attention).max() + 1e-5
    x = load_images(faces, model.preprocessing)  # real inputs
    assert _close(backend(x), _torch(model, x)[0])
    assert backend(x[:0]).shape == (0, 7)
    with pytest.raises(DanError, match="expected input of shape"):
        backend(np.zeros((1, 3, SIZE + 1, SIZE + 1), np.float32))
    assert OnnxBackend(path, labels="fer2013").labels[0] == "anger"


def test_int8_static_quantisation_agrees_with_float32(setup, tmp_path) -> None:
    model, _, faces, path = setup
    x = load_images(faces, model.preprocessing)
    out = quantize_onnx(path, tmp_path / "int8.onnx", calib=x[::2])
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert json.loads({p.key: p.value for p in proto.metadata_props}["labels"]) == list(RAFDB)
    ref = _torch(model, x)[0]
    got = OnnxBackend(out)(x)
    # an untrained network has small logit margins, so top-1 agreement is only a loose check here;
    # the int8 logits must still follow the float32 ones closely
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9
    assert top1_agreement(got, ref) >= 0.5
    assert len(set(ref.argmax(1))) > 1  # agreement is not trivial


def test_int8_falls_back_to_minmax_ranges_when_percentiles_cannot_be_binned(setup, tmp_path, monkeypatch) -> None:
    import onnxruntime.quantization as q

    model, _, faces, path = setup
    real, methods = q.quantize_static, []

    def percentile_fails(*args, **kwargs):  # what numpy raises for a tensor whose values barely vary
        methods.append(kwargs["calibrate_method"])
        if kwargs["calibrate_method"] == q.CalibrationMethod.Percentile:
            raise ValueError("Too many bins for data range. Cannot create 2048 finite-sized bins.")
        return real(*args, **kwargs)

    monkeypatch.setattr(q, "quantize_static", percentile_fails)
    x = load_images(faces, model.preprocessing)
    out = quantize_onnx(path, tmp_path / "int8.onnx", calib=x[::2])
    assert methods == [q.CalibrationMethod.Percentile, q.CalibrationMethod.MinMax]
    record = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["dan_int8"])
    assert record["ranges"] == "minmax" and top1_agreement(OnnxBackend(out)(x), _torch(model, x)[0]) >= 0.5


def test_cli_int8_without_calib_is_static_on_generated_faces_and_dynamic_only_when_asked(
    setup, tmp_path, capsys, monkeypatch
) -> None:
    from dan.export import faces

    monkeypatch.setattr(faces, "CALIBRATION_FACES", 32)  # 256 by default: fewer for a quick test
    model, ckpt, _, _ = setup
    static = tmp_path / "static.onnx"
    assert dan_main(["export", "--checkpoint", str(ckpt), "--output", str(static), "--int8"]) == 0
    out, err = capsys.readouterr()
    assert "calibrated on 16 generated faces (dan synth, seed 0)" in out and "on 16 held-out generated" in out
    assert "kept a copy for --backend auto" in out and "VNNI" not in err
    proto = onnx.load(str(static))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["dan_int8"]) == {
        "mode": "static",
        "calibration": "generated faces (dan synth, seed 0)",
        "images": 16,
        "ranges": "percentile",
    }
    ops = {n.op_type for n in proto.graph.node}
    assert "QuantizeLinear" in ops and "DynamicQuantizeLinear" not in ops  # activations ranges calibrated
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    # 7-bit weights: AVX2's u8 x s8 pair sums cannot saturate (dan.export.quantize)
    assert weights and all(w.min() >= -64 and w.max() <= 64 for w in weights)
    assert max(int(np.abs(w).max()) for w in weights) >= 60  # the range is used, not collapsed
    dynamic = tmp_path / "dynamic.onnx"
    assert dan_main(["export", "--checkpoint", str(ckpt), "--output", str(dynamic), "--int8-mode", "dynamic"]) == 0
    assert "slower than float32" in capsys.readouterr().err
    proto = onnx.load(str(dynamic))
    assert json.loads({p.key: p.value for p in proto.metadata_props}["dan_int8"]) == {"mode": "dynamic"}
    assert "DynamicQuantizeLinear" in {n.op_type for n in proto.graph.node}
    with pytest.raises(DanError, match="static int8 needs calibration faces"):
        export_checkpoint(model, tmp_path / "x.onnx", int8=True)
    with pytest.raises(DanError, match=r"expected an array \(N, 3, 64, 64\)"):
        export_checkpoint(model, tmp_path / "x.onnx", int8=True, calib=np.zeros((2, 3, 8, 8), np.float32))
    assert not (tmp_path / "x.onnx").exists()


def test_pt2_export_matches_carries_metadata_and_is_read_by_load_backend(setup, tmp_path) -> None:
    model, _, faces, _ = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_checkpoint(model, tmp_path / "m.pt2", "pt2", calib=faces, verify=True)
    assert report.ok and report.max_abs_diff_random <= 1e-3 and report.max_abs_diff_images <= 1e-3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is unchanged
    backend = load_backend(tmp_path / "m.pt2")  # what dan predict / evaluate / serve open
    assert isinstance(backend, Pt2Backend) and backend.labels == RAFDB
    assert backend.preprocessing == model.preprocessing
    x = np.random.default_rng(2).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)
    logits, attention, _ = backend.outputs(x, attention=True)
    assert _close(logits, _torch(model, x)[0])
    assert attention.shape == (3, 2, 2, 2)


def test_pt2_files_holding_pickles_are_refused(setup, tmp_path) -> None:
    import zipfile

    model, _, _, _ = setup
    good = tmp_path / "m.pt2"
    export_checkpoint(model, good, "pt2")
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"]))
                config["config"][first]["use_pickle"] = True  # as a crafted archive would say
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(DanError, match="bad.pt2: refused to load: entry .* is a pickled object"):
        check_pt2_archive(bad)
    with pytest.raises(DanError, match="bad.pt2: refused to load"):
        load_backend(bad)
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(DanError, match="junk.pt2: not a torch.export"):
        load_backend(tmp_path / "junk.pt2")
    (tmp_path / "old.ts").write_bytes(b"junk")
    with pytest.raises(DanError, match="old.ts: TorchScript files are no longer read.*--format pt2"):
        load_backend(tmp_path / "old.ts")


def test_cli_export_verify_and_errors(setup, tmp_path, capsys, monkeypatch) -> None:
    _, ckpt, faces, _ = setup
    out = tmp_path / "sub" / "cli.onnx"
    args = ["export", "--checkpoint", str(ckpt), "--output", str(out), "--calib", str(faces)]
    assert dan_main([*args, "--format", "onnx", "--int8", "--verify", "--min-agreement", "0.3"]) == 0
    text = capsys.readouterr().out
    assert f"images of {faces}" in text and "OK" in text and "int8 (static quantisation): top-1 agreement" in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["cli.onnx"]  # no temporary file left
    assert OnnxBackend(out).labels == RAFDB
    # a verification that cannot pass: exit 1, nothing under the name asked for, the export kept under a name saying so
    pt2 = tmp_path / "cli.pt2"
    with monkeypatch.context() as m:  # (--tolerance -1 is refused while parsing now)
        m.setattr("dan.export.verify_against_torch", lambda report, *_: report.fail("difference 1 > tolerance 0"))
        assert dan_main([*args[:4], str(pt2), "--verify"]) == 1
    assert not pt2.exists() and (tmp_path / "cli.failed-verify.pt2").is_file()
    assert "verification failed" in capsys.readouterr().err
    # bad inputs: one line naming the file, exit 1
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    assert dan_main(["export", "--checkpoint", str(bad), "--output", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.pt" in err
    assert dan_main([*args[:-1], str(tmp_path / "nope"), "--int8"]) == 1
    assert "nope" in capsys.readouterr().err
    assert dan_main([*args, "--format", "pt2", "--int8"]) == 1
    assert not (tmp_path / "x.onnx").exists()
    (tmp_path / "file.txt").write_text("x")
    assert dan_main([*args[:4], str(tmp_path / "file.txt" / "x.onnx")]) == 1  # checked before any work
    assert "cannot create the output folder" in capsys.readouterr().err


def test_missing_inputs_are_one_line_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(DanError, match="no such folder"):
        load_images(tmp_path / "missing", Preprocessing())
    with pytest.raises(DanError, match="no images"):
        load_images(tmp_path, Preprocessing())
    with pytest.raises(DanError, match="missing.onnx: no such file"):
        OnnxBackend(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00junk")
    with pytest.raises(DanError, match="junk.onnx: not a loadable ONNX model"):
        OnnxBackend(junk)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(DanError, match=r"pip install 'dan-fer\[export\]'"):
        OnnxBackend(junk)


def test_a_seven_class_reference_file_asks_for_the_labels_option(tmp_path, capsys) -> None:
    """The command line names its option (--labels); Python callers keep the keyword (labels=)."""
    from dan.models.reference import PlainDAN

    ref = tmp_path / "ref7.pth"
    torch.save({"iter": 1, "model_state_dict": PlainDAN(7, 2).state_dict(), "optimizer_state_dict": {}}, ref)
    wanted = "a 7-class model needs a label set: pass --labels one of: rafdb, affectnet7, fer2013, sfew, expw, ckplus7"
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    for argv in (
        ["export", "--checkpoint", str(ref), "--output", str(tmp_path / "x.onnx")],
        ["predict", str(photo), "--checkpoint", str(ref), "--backend", "torch"],
    ):
        assert dan_main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"dan {argv[0]}: error: {ref}: {wanted}", err
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(DanError, match="pass labels= one of: rafdb, affectnet7, fer2013"):
        load_backend(ref, "torch")


def test_int8_export_leaves_nothing_in_tmpdir_and_prints_only_its_lines(setup, tmp_path) -> None:
    """main left torchinductor_root/ and onnxruntime's .ses session file in $TMPDIR, and printed onnxruntime's
    calibration progress on stdout. A fresh process: both are made when torch and onnxruntime are imported."""
    import os
    import subprocess
    from pathlib import Path

    _, ckpt, faces, _ = setup
    tmpdir, home = tmp_path / "tmpdir", tmp_path / "home"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "DAN_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    out = tmp_path / "m8.onnx"
    argv = ["export", "--checkpoint", str(ckpt), "--output", str(out), "--int8", "--calib", str(faces)]
    done = subprocess.run(
        [sys.executable, "-m", "dan.cli.main", *argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmpdir)) == []
    lines = done.stdout.splitlines()
    assert lines and lines[0] == f"wrote {out} (ONNX int8, opset 18)", lines
    assert all(line.startswith(("wrote ", "int8", "kept a copy ")) for line in lines), lines
