"""What dan fetches by name: the released DAN models and the released backbone weights.

:mod:`dan.hub` downloads, verifies, pins and caches them (and re-exports these names). A catalogue entry's
``sha256`` is checked after every download and on every load from the cache; while it is None, the hash
of the first verified download is recorded beside the file (trust on first use, :mod:`dan.hub.records`).
``scripts/maint/pin_releases.py`` prints the lines to paste here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dan.preprocess import Preprocessing

__all__ = ["BACKBONES", "RELEASED", "ReleasedBackbone", "ReleasedModel"]


@dataclass(frozen=True)
class ReleasedModel:
    """A released checkpoint that :func:`dan.hub.resolve_checkpoint` fetches by name.

    Attributes:
        name: The name users type (``rafdb``).
        filename: The file's own name, kept in the cache.
        drive_id: Google Drive file id of the original release.
        num_classes: Outputs of the classifier.
        labels: Label-set name in :data:`dan.vocab.LABEL_SETS`.
        accuracy: Published test accuracy (fraction).
        balanced_accuracy: Published balanced accuracy (fraction), or None where none was published.
        description: One line on what it was trained on.
        preprocessing: How its faces were cut out and prepared (the reference files carry no record):
            RAF-DB's model saw faces aligned by five landmarks, AffectNet's the data set's face boxes
            (margin 0); both 224 px, ImageNet mean and std. :func:`dan.models.load_model` gives it to
            a released model loaded by name.
        url: Where it is fetched from; default the Drive download URL of ``drive_id``. A Drive URL goes
            through gdown, any other through plain HTTP.
        sha256: The file's SHA-256 (lowercase hex), checked after every download and on every load from
            the cache; None until someone fills it in (``scripts/maint/pin_releases.py`` prints the lines): then
            the hash of the first verified download (or of a file found in the cache) is recorded beside
            the file and later loads are checked against that (see :mod:`dan.hub.records`).
    """

    name: str
    filename: str
    drive_id: str
    num_classes: int
    labels: str
    accuracy: float
    balanced_accuracy: float | None = None
    description: str = ""
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    url: str = ""
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"https://drive.google.com/uc?id={self.drive_id}")


_AFFECTNET = "AffectNet's face boxes, 224 px, ImageNet mean/std; the reference release"
_BOXES = Preprocessing(crop="box", margin=0.0)  # AffectNet's models saw the data set's face boxes, not aligned faces
RELEASED: dict[str, ReleasedModel] = {
    m.name: m
    for m in (
        ReleasedModel(
            name="rafdb",
            filename="rafdb_epoch21_acc0.897_bacc0.8275.pth",
            drive_id="1ASabP5wkLUIh4VQc8CEuZbZyLJEFaTMF",
            num_classes=7,
            labels="rafdb",
            accuracy=0.8970,
            balanced_accuracy=0.8275,
            description="RAF-DB's 5-landmark-aligned faces, 224 px, ImageNet mean/std; the reference release",
            preprocessing=Preprocessing(crop="align", face_size=100),
        ),
        ReleasedModel(
            name="affectnet7",
            filename="affecnet7_epoch6_acc0.6569.pth",  # sic: the released file's own name
            drive_id="1_Z-U7rT5NJ3Vc73aN2ZBmuvCkzUQG4jT",
            num_classes=7,
            labels="affectnet7",
            accuracy=0.6569,
            description=_AFFECTNET,
            preprocessing=_BOXES,
        ),
        ReleasedModel(
            name="affectnet8",
            filename="affecnet8_epoch5_acc0.6209.pth",
            drive_id="1uHNADViICyJEjJljv747nfvrGu12kjtu",
            num_classes=8,
            labels="affectnet8",
            accuracy=0.6209,
            description=_AFFECTNET,
            preprocessing=_BOXES,
        ),
    )
}


@dataclass(frozen=True)
class ReleasedBackbone:
    """Released backbone weights that ``model.backbone_weights`` names (not a DAN: never a checkpoint).

    Fetched by :func:`dan.hub.resolve_backbone`, pinned and cached exactly as a :class:`ReleasedModel`.

    Attributes:
        name: The name users type (``msceleb``).
        filename: The file's own name, kept in the cache.
        drive_id: Google Drive file id.
        architecture: The torchvision model whose every key and shape the file holds (``resnet18``).
        description: One line on what it was trained on.
        url: Where it is fetched from; default the Drive download URL of ``drive_id``.
        sha256: The file's SHA-256, or None (trust on first use, see :class:`ReleasedModel`).
    """

    name: str
    filename: str
    drive_id: str
    architecture: str
    description: str = ""
    url: str = ""
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"https://drive.google.com/uc?id={self.drive_id}")


BACKBONES: dict[str, ReleasedBackbone] = {
    b.name: b
    for b in (
        ReleasedBackbone(
            name="msceleb",
            filename="resnet18_msceleb.pth",
            drive_id="1u2NtY-5DVlTunfN4yxfxys5n8uh7sc3n",
            architecture="resnet18",
            description="ResNet-18 trained for face recognition on MS-Celeb-1M, the paper's initialisation "
            "({'state_dict': torchvision resnet18}); the reference implementation's file",
        ),
    )
}
