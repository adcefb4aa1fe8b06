"""Procedural face drawing: one expressive face per call, numpy and OpenCV only (a shared ground-floor module).

The synthetic data set (:mod:`dan.data.synth`) writes these faces; export draws them as int8 calibration
and ``--backend auto`` probe faces (:mod:`dan.export.faces`) through :func:`prepared_faces`.

A face is drawn in "face units" (the head oval is 2 units wide and 2.5 tall, centred on the origin,
v pointing down) and mapped to pixels by one affine transform, so pose (roll, shift, scale) costs
nothing extra. The seven RAF-DB expressions differ the way real ones do, through action-unit-like
parameters (:class:`Expression`): brow height, inner-brow raise and knitting; eye opening and
lower-lid raise; mouth width, corner lift, opening, roundness, teeth, upper-lip raise, asymmetry and
a nose wrinkle. Each is blended from neutral by a random intensity, and the identity, skin tone,
hair, lighting, background, blur, noise and occluders (patches, sunglasses, hands) vary at random.

Each face also gets a valence and an arousal (:func:`valence_arousal`): its expression's centre on
Russell's circumplex (:data:`CIRCUMPLEX`) scaled by the same intensity, plus a little noise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from dan.opencv import cv2
from dan.preprocess import Preprocessing, prepare_faces

__all__ = [
    "CIRCUMPLEX",
    "EXPRESSIONS",
    "Expression",
    "draw_face",
    "draw_face_with_intensity",
    "prepared_faces",
    "render_image",
    "valence_arousal",
]

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Expression:
    """Action-unit-like parameters of a face (face units; negative v is up)."""

    brow_raise: float = 0.0  # whole brow up (+) / down (-)
    brow_inner: float = 0.0  # inner end up (+) / down (-) relative to the outer end
    brow_knit: float = 0.0  # 0..1: inner ends pulled together
    eye_open: float = 1.0  # upper-lid opening factor
    lower_lid: float = 0.0  # 0..1: lower lid raised (cheek raise, squint)
    mouth_width: float = 0.34  # half width
    mouth_curve: float = 0.0  # corners up (+) / down (-)
    mouth_open_top: float = 0.0  # upper inner lip lifted
    mouth_open_bottom: float = 0.0  # jaw drop
    mouth_round: float = 0.0  # 0 lens-shaped .. 1 round opening
    teeth: float = 0.0  # 0..1 visible teeth
    upper_lip: float = 0.0  # upper lip raise (disgust)
    asym: float = 0.0  # one mouth corner raised more than the other
    wrinkle: float = 0.0  # 0..1 nose wrinkle / nasolabial folds
    lip_press: float = 0.0  # 0..1 thin, pressed lips


# RAF-DB order: surprise, fear, disgust, happiness, sadness, anger, neutral
EXPRESSIONS: tuple[Expression, ...] = (
    Expression(
        brow_raise=0.16, eye_open=1.65, mouth_width=0.2, mouth_open_top=0.13, mouth_open_bottom=0.25, mouth_round=1.0
    ),
    Expression(
        brow_raise=0.11,
        brow_inner=0.09,
        brow_knit=0.6,
        eye_open=1.55,
        mouth_width=0.44,
        mouth_curve=-0.06,
        mouth_open_top=0.03,
        mouth_open_bottom=0.09,
        teeth=0.6,
    ),
    Expression(
        brow_raise=-0.06,
        brow_inner=-0.03,
        brow_knit=0.4,
        eye_open=0.7,
        lower_lid=0.5,
        mouth_width=0.3,
        mouth_curve=-0.05,
        mouth_open_top=0.05,
        upper_lip=0.07,
        asym=0.1,
        teeth=0.8,
        wrinkle=1.0,
    ),
    Expression(eye_open=0.8, lower_lid=0.6, mouth_width=0.46, mouth_curve=0.17, wrinkle=0.35),
    Expression(brow_inner=0.13, brow_raise=-0.02, brow_knit=0.35, eye_open=0.78, mouth_width=0.3, mouth_curve=-0.13),
    Expression(
        brow_raise=-0.11,
        brow_inner=-0.11,
        brow_knit=1.0,
        eye_open=0.62,
        lower_lid=0.35,
        mouth_width=0.27,
        mouth_curve=-0.03,
        lip_press=1.0,
    ),
    Expression(),
)
_NEUTRAL = Expression()

# (valence, arousal) of each expression at full intensity, RAF-DB order, on Russell's circumplex
CIRCUMPLEX: tuple[tuple[float, float], ...] = (
    (0.2, 0.8),  # surprise
    (-0.6, 0.7),  # fear
    (-0.6, 0.3),  # disgust
    (0.8, 0.4),  # happiness
    (-0.7, -0.4),  # sadness
    (-0.5, 0.7),  # anger
    (0.0, 0.0),  # neutral
)
VA_NOISE = 0.05
"""Standard deviation of the noise added to each face's valence and arousal."""


def valence_arousal(label: int, intensity: float, rng: np.random.Generator) -> tuple[float, float]:
    """A face's (valence, arousal): its expression's :data:`CIRCUMPLEX` centre times ``intensity``, plus noise.

    Args:
        label: RAF-DB index 0..6.
        intensity: The blend from neutral the face was drawn with (0..1).
        rng: Draws the noise (normal, :data:`VA_NOISE`); its own generator, so the image's draws are not changed.

    Returns:
        Valence and arousal, each clipped to [-1, 1].
    """
    centre = np.asarray(CIRCUMPLEX[label], np.float64)  # (2,)
    va = np.clip(centre * intensity + rng.normal(0.0, VA_NOISE, 2), -1.0, 1.0)  # (2,)
    return float(va[0]), float(va[1])


_SKIN = np.array(
    [(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96), (160, 105, 72), (120, 78, 52), (90, 58, 40)],
    np.float64,
)
_HAIR = np.array(
    [(20, 16, 14), (60, 40, 28), (110, 75, 45), (200, 165, 110), (150, 150, 150), (130, 50, 25)], np.float64
)
_IRIS = np.array([(70, 45, 25), (40, 28, 20), (70, 110, 150), (80, 110, 70)], np.float64)


def _blend(e: Expression, t: float, rng: np.random.Generator) -> Expression:
    """Neutral + t * (e - neutral), with a little per-face jitter on every parameter."""
    values = {}
    for f in fields(Expression):
        base, target = getattr(_NEUTRAL, f.name), getattr(e, f.name)
        values[f.name] = base + t * (target - base)
    jitter = {"brow_raise": 0.02, "brow_inner": 0.015, "eye_open": 0.08, "mouth_width": 0.03, "mouth_curve": 0.02}
    for k, s in jitter.items():
        values[k] += rng.normal(0, s)
    return replace(e, **values)


class _Painter:
    """Draws polygons and lines given in face units onto an RGB float image through one affine map."""

    def __init__(self, image: np.ndarray, matrix: np.ndarray) -> None:
        self.image, self.m = image, matrix
        self.unit = float(np.hypot(matrix[0, 0], matrix[1, 0]))  # pixels per face unit

    def px(self, pts: np.ndarray) -> np.ndarray:
        p = np.asarray(pts, np.float64) @ self.m[:, :2].T + self.m[:, 2]
        return np.round(p * _ONE).astype(np.int32)

    def poly(self, pts: np.ndarray, color) -> None:
        cv2.fillPoly(self.image, [self.px(pts)], tuple(map(float, color)), cv2.LINE_AA, _SHIFT)

    def line(self, pts: np.ndarray, color, width: float, closed: bool = False) -> None:
        thickness = max(1, int(round(width * self.unit)))
        cv2.polylines(self.image, [self.px(pts)], closed, tuple(map(float, color)), thickness, cv2.LINE_AA, _SHIFT)

    def ellipse(self, cx: float, cy: float, ax: float, ay: float, color, angle: float = 0.0) -> None:
        self.poly(_ellipse_pts(cx, cy, ax, ay, angle), color)


def _ellipse_pts(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = ax * np.cos(t), ay * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _ramp(d: int, angle: float) -> np.ndarray:
    """A (d, d) float32 linear ramp over [-0.5, 0.5] along direction ``angle``."""
    x = np.linspace(-0.5, 0.5, d, dtype=np.float32)
    return np.float32(np.cos(angle)) * x[None, :] + np.float32(np.sin(angle)) * x[:, None]


def _background(d: int, rng: np.random.Generator) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    g = _ramp(d, rng.uniform(0, 2 * np.pi))
    g = (g - g.min()) / max(float(g.max() - g.min()), 1e-6)
    img = cv2.merge([c0[i] + (c1[i] - c0[i]) * g for i in range(3)])  # faster than broadcasting over (d, d, 3)
    for _ in range(rng.integers(0, 4)):  # a few soft shapes
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        center = tuple(int(v) for v in rng.integers(0, d, 2))
        if rng.random() < 0.5:
            cv2.circle(img, center, int(rng.integers(d // 10, d // 3)), color, -1, cv2.LINE_AA)
        else:
            size = rng.integers(d // 8, d // 2, 2)
            cv2.rectangle(img, center, (center[0] + int(size[0]), center[1] + int(size[1])), color, -1)
    return img


def _brows(p: _Painter, e: Expression, ex: float, ey: float, color, width: float, rng) -> None:
    for side in (-1, 1):
        inner_u = side * (0.16 - 0.07 * e.brow_knit)
        outer_u = side * (ex + 0.27)
        base = ey - 0.27 - e.brow_raise
        inner_v = base - e.brow_inner + 0.02
        outer_v = base + 0.03 + 0.5 * e.brow_inner * (e.brow_inner < 0)
        mid_u = 0.5 * (inner_u + outer_u)
        arch = 0.06 + 0.3 * max(e.brow_raise, 0)
        mid_v = 0.5 * (inner_v + outer_v) - arch
        pts = np.array([[inner_u, inner_v], [mid_u, mid_v], [outer_u, outer_v]])
        p.line(pts, color, width)
        if e.brow_knit > 0.5:  # vertical frown lines between the brows
            p.line(np.array([[side * 0.05, ey - 0.2], [side * 0.04, ey - 0.08]]), color * 0.4 + 120, 0.015)


def _eyes(p: _Painter, e: Expression, ex: float, ey: float, skin, iris_color, rng, glasses: bool) -> None:
    ew = 0.19
    top_h = 0.1 * max(e.eye_open, 0.15)
    bottom_h = 0.075 * (1.0 - 0.65 * e.lower_lid)
    u = np.linspace(-ew, ew, 25)
    gaze = rng.normal(0, 0.025, 2)
    for side in (-1, 1):
        cx = side * ex
        shape = np.sqrt(np.clip(1 - (u / ew) ** 2, 0, 1))
        slant = -side * 0.02 * u / ew * (1 if e.brow_inner > 0.05 else 0)  # sad eyes droop outward
        top = ey - top_h * shape + slant
        bottom = ey + bottom_h * shape + slant
        outline = np.concatenate([np.stack([cx + u, top], 1), np.stack([cx + u[::-1], bottom[::-1]], 1)])
        p.poly(outline, np.minimum(skin * 0.35 + 150, 225))  # sclera, in the face's light
        t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
        r = 0.1
        iu, iv = cx + gaze[0] + r * np.cos(t), ey + gaze[1] + r * np.sin(t)
        rel = np.clip(iu - cx, -ew, ew)
        sh = np.sqrt(np.clip(1 - (rel / ew) ** 2, 0, 1))
        iv = np.clip(iv, ey - top_h * sh, ey + bottom_h * sh)
        p.poly(np.stack([iu, iv], 1), iris_color)
        pupil = np.stack([iu, iv], 1) * 0.45 + np.array([cx + gaze[0], ey + gaze[1]]) * 0.55
        p.poly(pupil, (15, 12, 12))
        p.line(np.stack([cx + u, top], 1), (35, 25, 22), 0.035)  # upper lid and lashes
        p.line(np.stack([cx + u, bottom], 1), skin * 0.6, 0.015)
        if e.lower_lid > 0.3:  # cheek bulge under a raised lower lid
            p.line(np.stack([cx + u * 0.8, bottom + 0.07 + 0.02 * shape], 1), skin * 0.8, 0.015)
        if e.eye_open > 1.3:  # white visible above the iris: lid crease high up
            p.line(np.stack([cx + u * 0.9, top - 0.05], 1), skin * 0.7, 0.015)
    if glasses:
        for side in (-1, 1):
            p.ellipse(side * ex, ey + 0.01, 0.27, 0.17, (20, 20, 25))
        p.line(np.array([[-ex + 0.27, ey], [ex - 0.27, ey]]), (20, 20, 25), 0.04)


def _nose(p: _Painter, e: Expression, skin) -> None:
    dark = skin * 0.62
    p.poly(np.array([[-0.05, -0.1], [0.05, -0.1], [0.08, 0.3], [-0.08, 0.3]]), np.minimum(skin * 1.1, 255))
    p.line(np.array([[-0.07, -0.02], [-0.1, 0.3]]), skin * 0.85, 0.03)
    p.line(np.array([[-0.16, 0.33], [-0.08, 0.4], [0.0, 0.42], [0.08, 0.4], [0.16, 0.33]]), dark, 0.03)
    for side in (-1, 1):
        p.ellipse(side * 0.08, 0.37, 0.045, 0.025, skin * 0.45)
    if e.wrinkle > 0.5:  # nose wrinkle and deep nasolabial folds
        for v in (0.04, 0.1, 0.16):
            p.line(np.array([[-0.09, v], [0.0, v - 0.02], [0.09, v]]), dark, 0.02)
    if e.wrinkle > 0.2:
        for side in (-1, 1):
            p.line(np.array([[side * 0.2, 0.36], [side * 0.33, 0.55], [side * 0.38, 0.72]]), skin * 0.72, 0.025)


def _mouth(p: _Painter, e: Expression, skin, rng) -> None:
    my = 0.74
    w = max(e.mouth_width, 0.12)
    u = np.linspace(-w, w, 31)
    x = u / w
    base = my - e.mouth_curve * x**2 - e.asym * np.clip(x, 0, 1) ** 2 + e.mouth_curve * 0.35
    power = 0.5 + 0.5 * (1 - e.mouth_round)
    bulge = np.clip(1 - x**2, 0, 1) ** power
    lip = skin * np.array([0.85, 0.55, 0.55])
    open_top = e.mouth_open_top + e.upper_lip
    top_inner = base - open_top * bulge - e.upper_lip * 0.5 * np.clip(-x, 0, 1)
    bottom_inner = base + e.mouth_open_bottom * bulge
    lip_t = 0.06 * (1 - 0.7 * e.lip_press)
    top_outer = top_inner - lip_t * bulge**0.3 - 0.01
    bottom_outer = bottom_inner + (lip_t + 0.02) * bulge**0.3 + 0.01
    outer = np.concatenate([np.stack([u, top_outer], 1), np.stack([u[::-1], bottom_outer[::-1]], 1)])
    p.poly(outer, lip)
    gap = (bottom_inner - top_inner).max()
    if gap > 0.03:
        inner = np.concatenate([np.stack([u, top_inner], 1), np.stack([u[::-1], bottom_inner[::-1]], 1)])
        p.poly(inner, (60, 20, 25))
        if e.teeth > 0.3:
            teeth_low = top_inner + min(0.07, 0.6 * gap) * bulge
            p.poly(
                np.concatenate([np.stack([u, top_inner], 1), np.stack([u[::-1], teeth_low[::-1]], 1)]), (240, 238, 228)
            )
        p.line(inner, lip * 0.7, 0.015, closed=True)
    else:
        p.line(np.stack([u, base], 1), lip * 0.45, 0.03 + 0.02 * e.lip_press)
    if e.mouth_curve > 0.08:  # smile dimples at the corners
        for side in (-1, 1):
            c = base[-1 if side > 0 else 0]
            p.line(np.array([[side * (w + 0.02), c - 0.05], [side * (w + 0.05), c + 0.03]]), skin * 0.7, 0.02)


def draw_face(label: int, rng: np.random.Generator, size: int = 100) -> np.ndarray:
    """Draw one face with expression ``label`` (RAF-DB index 0..6) as an RGB uint8 (size, size, 3) image.

    Args:
        label: 0 surprise, 1 fear, 2 disgust, 3 happiness, 4 sadness, 5 anger, 6 neutral.
        rng: The random generator that decides everything else.
        size: Output side in pixels.
    """
    return draw_face_with_intensity(label, rng, size)[0]


def draw_face_with_intensity(label: int, rng: np.random.Generator, size: int = 100) -> tuple[np.ndarray, float]:
    """:func:`draw_face`'s image (the same draws, the same pixels) and the intensity its expression was blended with."""
    d = 2 * size  # supersampled canvas
    img = _background(d, rng)
    intensity = rng.uniform(0.45, 1.0)
    e = _blend(EXPRESSIONS[label], intensity, rng)
    if label in (3, 5) and rng.random() < 0.5:  # open variants: a laugh with teeth, a snarl
        e = replace(
            e,
            mouth_open_top=0.02 * intensity,
            mouth_open_bottom=0.13 * intensity,
            teeth=1.0,
            lip_press=0.0,
            mouth_round=0.0 if label == 3 else -0.5,
        )

    unit = d * rng.uniform(0.27, 0.33)
    angle = np.deg2rad(rng.normal(0, 7))
    cx, cy = d / 2 + rng.normal(0, d * 0.025), d / 2 + rng.normal(0, d * 0.025) + 0.03 * d
    c, s = np.cos(angle) * unit, np.sin(angle) * unit
    aspect = rng.uniform(0.85, 1.05)  # face width / height variation
    matrix = np.array([[c * aspect, -s, cx], [s * aspect, c, cy]])
    p = _Painter(img, matrix)

    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.92, 1.05, 3)
    skin = np.clip(skin, 0, 255)
    hair = _HAIR[rng.integers(len(_HAIR))]
    cloth = rng.uniform(0, 255, 3)
    p.ellipse(0, 2.35, 2.0, 0.85, cloth)  # shoulders
    p.poly(np.array([[-0.42, 0.8], [0.42, 0.8], [0.48, 1.8], [-0.48, 1.8]]), skin * 0.85)  # neck
    long_hair = rng.random() < 0.4
    if long_hair:
        p.poly(np.array([[-1.15, -0.3], [1.15, -0.3], [1.25, 1.3], [-1.25, 1.3]]), hair)
    if rng.random() < 0.85:
        p.ellipse(0, -0.25, 1.1, 1.18, hair)
    for side in (-1, 1):
        p.ellipse(side * 0.98, 0.05, 0.16, 0.27, skin * 0.9)
    p.ellipse(0, 0.05, 1.0, 1.22, skin)  # head
    fringe = rng.uniform(0.15, 0.45)
    if rng.random() < 0.8:
        p.poly(np.concatenate([_ellipse_pts(0, -0.35, 1.02, 0.85)[20:], [[1.02, -0.35]]]), hair)
        p.ellipse(0, -1.0, 0.9, fringe, hair)
    ex = rng.uniform(0.34, 0.42)
    ey = rng.uniform(-0.15, -0.05)
    _brows(p, e, ex, ey, np.minimum(hair * 0.6 + 10, skin * 0.45), rng.uniform(0.05, 0.085), rng)
    shade = rng.uniform(0.72, 0.86)  # eye sockets and the brow ridge are in shadow
    for side in (-1, 1):
        p.ellipse(side * ex, ey - 0.04, 0.3, 0.2, skin * shade)
    glasses = rng.random() < 0.06
    _eyes(p, e, ex, ey, skin, _IRIS[rng.integers(len(_IRIS))], rng, glasses)
    _nose(p, e, skin)
    _mouth(p, e, skin, rng)
    if label == 6 or rng.random() < 0.3:  # chin line
        p.line(np.array([[-0.18, 1.05], [0.0, 1.1], [0.18, 1.05]]), skin * 0.8, 0.015)

    if rng.random() < 0.15:  # occluder: a hand-like blob or a patch
        if rng.random() < 0.5:
            hu, hv = rng.uniform(-0.7, 0.7), rng.uniform(0.5, 1.3)
            p.ellipse(hu, hv, 0.35, 0.25, skin * 0.95, rng.uniform(-0.5, 0.5))
            for k in range(4):
                p.ellipse(hu - 0.24 + 0.16 * k, hv - 0.28, 0.07, 0.18, skin * 0.95)
        else:
            pu, pv = rng.uniform(-1, 1), rng.uniform(-1, 1.2)
            p.poly(np.array([[pu, pv], [pu + 0.5, pv], [pu + 0.5, pv + 0.4], [pu, pv + 0.4]]), rng.uniform(0, 255, 3))

    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    strength = rng.uniform(0, 0.9)  # lighting gradient and exposure
    light = (1.0 + strength * _ramp(size, rng.uniform(0, 2 * np.pi))) * np.float32(rng.uniform(0.75, 1.15))
    out = cv2.multiply(out, cv2.merge([light, light, light]))
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(0, 7))
    return np.clip(out, 0, 255).astype(np.uint8), float(intensity)


def render_image(seed: int, index: int, label: int, size: int = 100) -> np.ndarray:
    """The RGB image of item ``index`` with RAF-DB label index ``label`` (0..6), deterministic in its arguments."""
    return draw_face(label, np.random.default_rng([seed, index, label]), size)


def prepared_faces(n: int, pre: Preprocessing, seed: int = 0) -> np.ndarray:
    """``n`` generated 100 px faces (the seven expressions in turn) as a model's input: (n, 3, S, S) float32,
    prepared with the model's own record ``pre`` (:func:`dan.preprocess.prepare_faces`)."""
    return prepare_faces([render_image(seed, i, i % 7) for i in range(n)], pre)
