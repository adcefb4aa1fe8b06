"""What every model file ``dan`` writes carries, defined once: :class:`ModelMetadata`.

Checkpoints (``.ckpt``, ``.pt``, ``.safetensors``) keep it under the key ``dan``; exports keep it as
JSON (ONNX ``metadata_props["dan"]``, the ``.pt2`` extra file ``dan.json``). It holds the constructor
arguments that rebuild the network, the class names, the preprocessing record, what the model was
trained on and a checksum of the weights. :meth:`ModelMetadata.read` checks every value (types and
ranges) before a model is built, and refuses a file written by a newer ``dan``; loaders verify the
checksum, so a file damaged after it was written is one line naming it, not a model that predicts
nonsense.

Every loader goes through this one record: :func:`dan.models.loading.load_model` (checkpoints,
reference files), and the ONNX, OpenVINO and ``.pt2`` runtimes (:mod:`dan.runtime`) call
:meth:`ModelMetadata.read` on what the file stored, :meth:`ModelMetadata.with_labels` to settle the
class names, and keep the record (``backend.metadata``); a file that stored none (a reference ``.pth``,
another exporter's ONNX file) gets a record built from what the file shows (its class count) and, for
a released model, the catalogue's preprocessing (:attr:`dan.hub.ReleasedModel.preprocessing`).

Format versions: 1 (no checksum, no ``trained_on``) and 2 (this one) are read. A model with the
valence/arousal output has ``model_config.va_head: true`` (:attr:`ModelMetadata.has_va`); other
records leave the key out, as they always did (an older ``dan`` refuses such a file: an unknown
setting). A calibrated model (``dan calibrate``) adds ``temperature`` and ``calibration`` to version 2
(an older ``dan`` reads such a file and ignores them: its probabilities are then the uncalibrated ones).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from dan.errors import DanError
from dan.preprocess import Preprocessing
from dan.vocab import HEADS, resolve_labels

if TYPE_CHECKING:
    from dan.models.dan import DAN

__all__ = ["FORMAT_VERSION", "TEMPERATURE_RANGE", "ModelMetadata", "tensor_checksum"]

FORMAT_VERSION = 2
TEMPERATURE_RANGE = (0.001, 1000.0)
"""The temperatures a record may hold (``dan calibrate`` fits within ``dan.evaluation.calibration.T_BOUNDS``)."""


def tensor_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict's tensors (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # (N,) raw bytes
    return "sha256:" + h.hexdigest()


def _check_config(config: object, where: str) -> dict:
    if not isinstance(config, Mapping):
        raise DanError(f"{where}model_config: expected a mapping, got {type(config).__name__}")
    config = dict(config)
    ranges = {"num_classes": (1, 100_000), "num_heads": (1, 64), "in_chans": (1, 64)}
    for key, (lo, hi) in ranges.items():
        if key in config:
            v = config[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise DanError(f"{where}model_config.{key}={v!r}: expected an integer from {lo} to {hi}")
    if "drop_rate" in config:
        v = config["drop_rate"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
            raise DanError(f"{where}model_config.drop_rate={v!r}: expected a number in [0, 1)")
    if "backbone" in config and (not isinstance(config["backbone"], str) or not config["backbone"].strip()):
        raise DanError(f"{where}model_config.backbone={config['backbone']!r}: expected a timm model name")
    if "head" in config and config["head"] not in HEADS:
        raise DanError(f"{where}model_config.head={config['head']!r}: choose one of {', '.join(HEADS)}")
    if "va_head" in config and not isinstance(config["va_head"], bool):
        raise DanError(f"{where}model_config.va_head={config['va_head']!r}: expected true or false")
    return config


@dataclass(frozen=True)
class ModelMetadata:
    """The ``dan`` entry of a model file.

    Attributes:
        model_config: Constructor arguments of :class:`dan.models.DAN` (``num_classes``, ``num_heads``, ...).
        labels: Class names, index ``i`` naming output ``i``, or None.
        preprocessing: How a face becomes the model's input.
        trained_on: What the model was trained on, or None: the data set's format and whether its faces
            were generated, and (files written since the reader options were recorded) how its splits
            were read, which and the training split's digest (:class:`dan.data.provenance.TrainedOn`,
            read by ``dan evaluate`` and ``dan calibrate``).
        started_from: What training started from (``model.init_from``): ``spec`` as typed, ``checksum``
            (:func:`tensor_checksum` of the source network's weights, in this package's layout) and the
            source's ``labels``; None for a model trained from scratch (and older files).
        checksum: :func:`tensor_checksum` of the network's weights, or None (older files).
        temperature: The calibrated temperature T (``dan calibrate``): every runtime turns logits z into
            probabilities as softmax(z / T); None: not calibrated (T = 1).
        calibration: How ``temperature`` was fitted (data set, split, samples, NLL and ECE before and
            after), or None.
        extra: Other plain values (an export's ``outputs``, ``reparameterized``).
        format_version: The version of this record.
    """

    model_config: dict
    labels: tuple[str, ...] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    trained_on: dict | None = None
    checksum: str | None = None
    started_from: dict | None = None
    temperature: float | None = None
    calibration: dict | None = None
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        """Plain types only (a weights-only load and JSON both read it back)."""
        return {
            "format_version": self.format_version,
            "model_config": dict(self.model_config),
            "labels": list(self.labels) if self.labels is not None else None,
            "preprocessing": self.preprocessing.to_dict(),
            "trained_on": self.trained_on,
            "checksum": self.checksum,
            **({"started_from": dict(self.started_from)} if self.started_from is not None else {}),
            **({"temperature": float(self.temperature)} if self.temperature is not None else {}),
            **({"calibration": dict(self.calibration)} if self.calibration is not None else {}),
            **self.extra,
        }

    @property
    def has_va(self) -> bool:
        """Whether the model has the valence/arousal output (``model_config.va_head``; absent: no)."""
        return bool(self.model_config.get("va_head", False))

    @property
    def num_classes(self) -> int | None:
        """The classifier's outputs (``model_config.num_classes``, else the number of stored labels), or None."""
        n = self.model_config.get("num_classes")
        if n is None and self.labels is not None:
            n = len(self.labels)
        return int(n) if n is not None else None

    @classmethod
    def read(cls, raw: object, where: str = "") -> ModelMetadata | None:
        """The record a model file stored, checked: what every loader calls.

        Args:
            raw: The stored ``dan`` entry: a mapping (checkpoints), its JSON text (ONNX metadata, the
                ``.pt2`` extra file), or None (or empty) when the file stored none.
            where: Prefix for errors, such as ``"model.onnx: "``.

        Returns:
            The record, or None when the file has none (a reference ``.pth``, another exporter's file).

        Raises:
            DanError: Text that is not a JSON object, a newer format, a missing ``model_config``, or a
                value of the wrong type or range (named by its key).
        """
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DanError(f"{where}damaged DAN settings: not UTF-8 text") from None
        if isinstance(raw, str):
            if not raw.strip():
                return None
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as err:
                raise DanError(f"{where}damaged DAN settings: not JSON ({err.msg} at character {err.pos})") from None
        if raw is None or (isinstance(raw, Mapping) and not raw):
            return None
        return cls.from_dict(raw, where)

    def with_labels(
        self, labels: str | Sequence[str] | None = None, where: str = "", num_classes: int | None = None
    ) -> ModelMetadata:
        """This record with its class names settled: ``labels`` (a label-set name or names) if given, else
        the stored ones (None is only unambiguous for 8 classes, AffectNet-8's order).

        Args:
            labels: Names overriding the stored ones.
            where: Prefix for errors, such as ``"model.onnx: "``.
            num_classes: The network's class count, when the loader knows it better than the record.

        Raises:
            DanError: The class count is unknown, or the names do not fit it (:func:`dan.vocab.resolve_labels`).
        """
        n = num_classes or self.num_classes
        if n is None:
            raise DanError(f"{where}cannot tell the number of classes (no model_config.num_classes, no labels)")
        try:
            names = resolve_labels(labels if labels is not None else self.labels, n)
        except DanError as err:
            raise type(err)(f"{where}{err}") from None
        return dataclasses.replace(self, labels=names)

    def apply_to(self, model: DAN) -> DAN:
        """Give ``model`` this record's class names, preprocessing, ``trained_on``, ``started_from`` and
        ``temperature``; returns it."""
        model.labels = self.labels
        model.preprocessing = self.preprocessing
        model.trained_on = self.trained_on
        model.started_from = self.started_from
        model.temperature = self.temperature
        model.calibration = self.calibration
        return model

    @classmethod
    def from_dict(cls, d: object, where: str = "") -> ModelMetadata:
        """Read and check a stored record.

        Args:
            d: What the file stored.
            where: Prefix for errors, such as ``"model.pt: "``.

        Raises:
            DanError: A newer format, a missing ``model_config``, or a value of the wrong type or range
                (named by its key).
        """
        if not isinstance(d, Mapping):
            raise DanError(f"{where}damaged DAN settings: expected a mapping, got {type(d).__name__}")
        version = d.get("format_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DanError(f"{where}format_version={version!r}: not a version this dan knows")
        if version > FORMAT_VERSION:
            raise DanError(
                f"{where}written by a newer dan (file format {version}, this dan reads up to {FORMAT_VERSION}): "
                "upgrade dan (pip install -U dan)"
            )
        if "model_config" not in d:
            raise DanError(f"{where}damaged DAN settings: the 'dan' entry has no 'model_config'")
        labels = d.get("labels")
        names_ok = isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)
        if labels is not None and not names_ok:
            raise DanError(f"{where}labels={labels!r}: expected a list of class names")
        trained_on = d.get("trained_on")
        checksum = d.get("checksum")
        if checksum is not None and not isinstance(checksum, str):
            raise DanError(f"{where}checksum={checksum!r}: expected a string")
        started_from = d.get("started_from")
        if started_from is not None and not isinstance(started_from, Mapping):
            raise DanError(f"{where}started_from={started_from!r}: expected a mapping")
        temperature = d.get("temperature")
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]
        ):
            lo, hi = TEMPERATURE_RANGE
            raise DanError(f"{where}temperature={temperature!r}: expected a number from {lo} to {hi}")
        calibration = d.get("calibration")
        if calibration is not None and not isinstance(calibration, Mapping):
            raise DanError(f"{where}calibration={calibration!r}: expected a mapping")
        known = {"format_version", "model_config", "labels", "preprocessing", "trained_on", "checksum", "started_from"}
        known |= {"temperature", "calibration"}
        return cls(
            model_config=_check_config(d["model_config"], where),
            labels=tuple(labels) if labels is not None else None,
            preprocessing=Preprocessing.from_dict(d.get("preprocessing"), where),
            trained_on=dict(trained_on) if isinstance(trained_on, Mapping) else None,
            checksum=checksum,
            started_from=dict(started_from) if started_from is not None else None,
            temperature=float(temperature) if temperature is not None else None,
            calibration=dict(calibration) if calibration is not None else None,
            extra={k: v for k, v in d.items() if k not in known},
            format_version=version,
        )

    @classmethod
    def of_model(cls, model: DAN, state: Mapping[str, torch.Tensor] | None = None) -> ModelMetadata:
        """The record of a :class:`dan.models.DAN` (its ``state`` checksummed; default its own state dict)."""
        return cls(
            model_config=model.model_config,
            labels=tuple(model.labels) if model.labels is not None else None,
            preprocessing=model.preprocessing,
            trained_on=getattr(model, "trained_on", None),
            started_from=getattr(model, "started_from", None),
            temperature=getattr(model, "temperature", None),
            calibration=getattr(model, "calibration", None),
            checksum=tensor_checksum(model.state_dict() if state is None else state),
        )

    def verify(self, state: Mapping[str, torch.Tensor], where: str = "") -> None:
        """Check ``state`` against the stored checksum (files without one pass).

        Raises:
            DanError: The weights are not the ones that were written.
        """
        if self.checksum is not None and tensor_checksum(state) != self.checksum:
            raise DanError(
                f"{where}damaged file: its weights do not match the checksum written with them "
                "(changed or corrupted after it was saved)"
            )
