"""uint8 batches finished on the device: the same tensors as the all-CPU pipeline, a quarter of the bytes,
extra keys passed through, and training that ends with the same weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dan.cli.main import main
from dan.data import batch as batches
from dan.data.batch import DeviceTransform, collate, sample
from dan.data.datamodule import FERDataModule
from dan.data.transforms import Transform
from dan.errors import DanError
from dan.preprocess import Preprocessing, normalize, resize_face
from dan.training.module import DANModule

CONF = Path(__file__).parent / "conf" / "tiny.yaml"


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    assert main(["synth", str(root), "--per-class", "5", "--size", "40", "--seed", "2"]) == 0
    return root


def _modules(root: Path, augment: str, workers: int, size: int = 32) -> tuple[FERDataModule, FERDataModule]:
    options = {"format": "rafdb", "root": str(root), "image_size": size, "augment": augment, "batch_size": 8}
    options.update(num_workers=workers, seed=5, mean=(0.5, 0.45, 0.4), std=(0.2, 0.25, 0.3))
    new, old = FERDataModule(**options), FERDataModule(**options, device_transforms=False)
    new.setup("fit")
    old.setup("fit")
    return new, old


@pytest.mark.parametrize(("augment", "workers"), [("rafdb", 0), ("affectnet", 0), ("flip", 0), ("rafdb", 1)])
def test_the_device_path_gives_the_cpu_paths_tensors(faces: Path, augment: str, workers: int) -> None:
    new, old = _modules(faces, augment, workers)
    finish = DeviceTransform(new.preprocessing)
    erased = 0
    for epoch in (0, 1):  # the sampler's per-sample seeds: the same augmentation in both pipelines, every epoch
        new_loader, old_loader = new.train_dataloader(), old.train_dataloader()
        new_loader.sampler.set_epoch(epoch)
        old_loader.sampler.set_epoch(epoch)
        for b, (x, y) in zip(new_loader, old_loader, strict=True):
            assert b["image"].dtype == torch.uint8 and b["image"].shape == x.shape
            erased += int((b["erase"][:, 2] > 0).sum())
            out = finish.batch(b)
            assert set(out) == {"image", "label", "va"} and torch.equal(out["label"], y)  # generated: with va
            torch.testing.assert_close(out["image"], x, rtol=0, atol=1e-6)
            assert torch.equal(out["image"], x)  # on the CPU: bit for bit
            masked = batches._erase_masked(finish(b["image"]), b["erase"])  # the GPU's way of erasing
            assert torch.equal(masked, x)
    assert erased > 0 if augment != "flip" else erased == 0
    for a, b in ((new.val_dataloader(), old.val_dataloader()),):
        for nb, (x, _) in zip(a, b, strict=True):
            assert torch.equal(finish.batch(nb)["image"], x)  # evaluation batches too


def test_a_uint8_face_is_a_quarter_of_the_bytes() -> None:
    pre = Preprocessing(input_size=224)
    transform = Transform("rafdb", pre, seed=0)
    face = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    hwc, box = transform.prepare(face)
    item = sample(hwc, 3, box)
    old = transform(face)
    assert old.untyped_storage().nbytes() == 3 * 224 * 224 * 4 == 602_112
    assert item["image"].untyped_storage().nbytes() == 3 * 224 * 224 == 602_112 // 4
    assert item["erase"].nbytes == 16 and item["label"].nbytes == 8


def test_collate_and_the_hook_pass_extra_keys_through() -> None:
    pre = Preprocessing(input_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    rng = np.random.default_rng(1)
    items = []
    for k in range(3):
        item = sample(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), k, (2, 3, 4, 5) if k == 1 else None)
        item["va"] = torch.tensor([0.1 * k, -0.2], dtype=torch.float32)  # what later readers will add
        item["soft"] = torch.full((7,), 1 / 7)
        items.append(item)
    items.append(sample(np.ascontiguousarray(items[0]["image"].permute(1, 2, 0).numpy())[:, ::-1], 1, None))
    items[-1].update(va=torch.zeros(2), soft=torch.zeros(7))  # a mirrored view (negative strides) is taken too
    b = collate(items)
    assert torch.equal(b["image"][3], b["image"][0].flip(-1))
    items.pop()
    b = collate(items)
    assert b["va"].shape == (3, 2) and b["soft"].shape == (3, 7) and b["erase"].tolist()[0] == [-1, -1, -1, -1]
    module = DANModule(7, 2, backbone="test_resnet", preprocessing=pre.to_dict(), channels_last=True)
    out = module.on_after_batch_transfer(b, 0)
    assert set(out) == {"image", "label", "va", "soft"} and out["va"] is b["va"] and out["soft"] is b["soft"]
    x = out["image"]
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    want = torch.from_numpy(normalize(np.stack([i["image"].permute(1, 2, 0).numpy() for i in items]), pre))
    want[1, :, 2:6, 3:8] = 0
    assert torch.equal(x, want)
    pair = (torch.zeros(2, 3, 16, 16), torch.zeros(2, dtype=torch.int64))
    assert module.on_after_batch_transfer(pair, 0) is pair  # the all-CPU pipeline's batches: untouched


def test_training_on_either_pipeline_ends_with_the_same_weights(faces: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    states = []
    for device_transforms in ("true", "false"):
        args = ["fit", "-c", str(CONF), "--data.root", str(faces), "--trainer.default_root_dir", str(tmp_path)]
        args += ["--data.device_transforms", device_transforms, "--trainer.max_epochs", "1"]
        args += ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"]
        args += ["--model.channels_last", "true", "--data.batch_size", "4"]
        assert main(args) == 0
        last = sorted((tmp_path / "runs" / "tiny").glob("version_*/checkpoints/last.ckpt"))[-1]
        states.append(torch.load(last, weights_only=True)["state_dict"])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_device_resize_ships_smaller_faces_and_stays_within_a_level(faces: Path) -> None:
    options = {"format": "rafdb", "root": str(faces), "image_size": 64, "augment": "flip", "batch_size": 8}
    options.update(num_workers=0, seed=5)
    resized, exact = FERDataModule(**options, device_resize=40), FERDataModule(**options)  # the faces are 40 px
    resized.setup("fit")
    exact.setup("fit")
    finish = DeviceTransform(resized.preprocessing)
    std = torch.tensor(resized.preprocessing.std).view(1, 3, 1, 1)  # (1, 3, 1, 1)
    for b, e in zip(resized.train_dataloader(), exact.train_dataloader(), strict=True):
        assert b["image"].shape[-2:] == (40, 40) and e["image"].shape[-2:] == (64, 64)  # 2.6x fewer bytes
        levels = ((finish.batch(b)["image"] - finish.batch(e)["image"]) * std * 255).abs()  # in pixel levels
        assert levels.max() <= 1.001 and levels.mean() < 0.05  # torch's uint8 resize against PIL's
    assert next(iter(resized.val_dataloader()))["image"].shape[-2:] == (64, 64)  # evaluation: the exact contract
    small = b["image"]
    pil = torch.from_numpy(np.stack([resize_face(f.permute(1, 2, 0).numpy(), 64) for f in small]))  # (B, 64, 64, 3)
    for uint8 in (True, False):  # the CPU's kernel and the GPU's float arithmetic
        mine = batches.resize_faces(small, 64, "bilinear", uint8=uint8).permute(0, 2, 3, 1)  # (B, 64, 64, 3)
        assert (mine.float() - pil.float()).abs().max() <= 1
    transform = Transform("rafdb", Preprocessing(input_size=64), seed=3, ship_size=40)
    face = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    boxes = [transform.prepare(face) for _ in range(30)]
    assert all(hwc.shape == (40, 40, 3) for hwc, _ in boxes)
    assert any(box is not None and box[0] + box[2] > 40 for _, box in boxes)  # drawn on the 64 px input
    assert transform(face).shape == (3, 64, 64)
    with pytest.raises(DanError, match=r"data.device_resize=40: needs data.device_transforms: true"):
        FERDataModule(**options, device_resize=40, device_transforms=False)


def test_a_compiled_model_takes_the_finished_batch() -> None:
    pre = Preprocessing(input_size=16)
    module = DANModule(7, 2, backbone="test_resnet", preprocessing=pre.to_dict(), channels_last=True, compile=True)
    module.configure_model()
    object.__setattr__(module, "_compiled", torch.compile(module.model, backend="eager"))  # fast, same wrapper type
    rng = np.random.default_rng(2)
    b = collate([sample(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), k, None) for k in range(2)])
    x = module.on_after_batch_transfer(b, 0)["image"]
    out = module(x)  # a compiled module's truth value is a len() it refuses: forward must not ask for it
    assert out.logits.shape == (2, 7)
