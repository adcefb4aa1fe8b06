"""The one preprocessing contract: what torchvision gives the reference models, and alignment."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torchvision import transforms as T

from dan.data.transforms import Transform
from dan.errors import DanError
from dan.inference.align import FACE_TEMPLATE, align_face, similarity_matrix
from dan.preprocess import Preprocessing, normalize, prepare_face, prepare_faces


def _face(size: int) -> np.ndarray:
    """The astronaut's face (a real photograph), as an RGB uint8 image of ``size`` pixels."""
    face = skimage.data.astronaut()[40:200, 150:310]  # (160, 160, 3)
    return np.asarray(Image.fromarray(face).resize((size, size), Image.Resampling.LANCZOS))


@pytest.mark.parametrize("size", [48, 100, 224, 400])
def test_input_equals_torchvision_resize_totensor_normalize(size: int) -> None:
    rgb = _face(size)
    pre = Preprocessing()  # 224 px, ImageNet mean and std, PIL bilinear
    reference = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(pre.mean, pre.std)])
    want = reference(Image.fromarray(rgb)).numpy()
    got = prepare_face(rgb, pre)
    assert got.shape == want.shape == (3, 224, 224) and got.dtype == np.float32
    diff = np.abs(got - want) * np.asarray(pre.std, np.float32)[:, None, None]  # back in [0, 1] pixel units
    assert diff.max() <= 1 / 255 and diff.mean() <= 0.5 / 255


def test_training_and_evaluation_transforms_use_the_same_contract() -> None:
    rgb = _face(100)
    pre = Preprocessing(input_size=64)
    np.testing.assert_array_equal(Transform("eval", pre)(rgb).numpy(), prepare_face(rgb, pre))
    batch = prepare_faces([rgb, rgb[:, ::-1]], pre)
    assert batch.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(batch[1], batch[0][..., ::-1], atol=1e-5)  # resize commutes with the mirror


def test_normalize_is_totensor_then_normalize() -> None:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    pre = Preprocessing(input_size=8, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    want = T.Normalize(pre.mean, pre.std)(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255)
    np.testing.assert_allclose(normalize(faces, pre), want.numpy(), atol=1e-6)


def test_alignment_undoes_a_rotation_scale_and_shift() -> None:
    # a face image with marks on the template positions, then moved by a known similarity transform
    size = 100
    canvas = np.zeros((size, size, 3), np.uint8)
    for k, (x, y) in enumerate(FACE_TEMPLATE * size):
        cv2.circle(canvas, (round(x), round(y)), 3, (50 * (k + 1), 255 - 40 * k, 120), -1)
    angle, scale, shift = 25.0, 2.4, (130.0, 60.0)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    m[:, 2] += shift
    photo = cv2.warpAffine(canvas, m, (480, 400))
    landmarks = FACE_TEMPLATE * size @ m[:, :2].T + m[:, 2]  # (5, 2) where the marks went
    aligned = align_face(photo, landmarks, size)
    assert aligned.shape == (size, size, 3)
    diff = np.abs(aligned.astype(int) - canvas.astype(int))
    assert diff.mean() < 4  # back where they were (up to resampling)
    back = similarity_matrix(landmarks, FACE_TEMPLATE * size)
    np.testing.assert_allclose(back[:, :2] @ m[:, :2], np.eye(2), atol=1e-6)


def test_alignment_of_a_large_face_is_antialiased() -> None:
    # a fine stripe pattern shrunk 8x: area averaging first gives grey, not moire
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255
    landmarks = FACE_TEMPLATE * 800
    aligned = align_face(stripes, landmarks, 100)
    assert abs(float(aligned.mean()) - 127.5) < 10 and aligned.std() < 25


def test_stored_settings_are_checked() -> None:
    assert Preprocessing.from_dict(Preprocessing(input_size=96, crop="box").to_dict()) == Preprocessing(96, crop="box")
    assert Preprocessing.from_dict({"input_size": 112}) == Preprocessing(input_size=112)  # older files
    for bad, key in (
        ({"input_size": "abc"}, "input_size"),
        ({"input_size": -1}, "input_size"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"std": [0.2, 0.0, 0.2]}, "std"),
        ({"resize": "lanczos9"}, "resize"),
        ({"crop": "magic"}, "crop"),
        ({"margin": 5}, "margin"),
    ):
        with pytest.raises(DanError, match=rf"^m\.pt: preprocessing\.{key}="):
            Preprocessing.from_dict(bad, "m.pt: ")
