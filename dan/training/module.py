"""The LightningModule for DAN: losses, metrics and optimiser around the plain :class:`dan.models.DAN`.

L = CE(logits, y) + lambda_af * L_af + lambda_pt * L_pt (docs/design.md, losses). The affinity
loss's class centres are parameters of this module, so the configured optimiser trains them with
the network. Metric keys: ``train/loss``, ``train/ce``, ``train/af``, ``train/pt``, ``train/acc``,
``val/loss``, ``val/acc``, ``val/bacc``, ``val/acc_best``, ``val/recall/<class>``, ``val/f1/<class>``
and the same under ``test/``.

With ``va_head`` the network also predicts valence and arousal (:mod:`dan.models.dan`); the loss adds
``va_weight`` times the concordance-correlation loss (:func:`dan.models.losses.ccc_loss`, over the
samples whose targets are known), logged as ``train/ccc_loss``, and validation and testing log
``val/ccc_valence``, ``val/ccc_arousal``, ``val/rmse_valence`` and ``val/rmse_arousal`` over the whole
split (:class:`dan.evaluation.va_metrics.VAMetrics`). The data set must be able to carry them
(:attr:`dan.data.datamodule.FERDataModule.has_va`): a config asking for the output on another is
refused before training, naming ``model.va_head``.

Fine-tuning (docs/design.md): ``init_from`` starts the network from a trained DAN when training starts
(:mod:`dan.models.transfer`: every tensor that fits, the classifier and the affinity centres class by
class name), ``freeze`` freezes the first backbone stages (:mod:`dan.models.freeze`) and
``backbone_lr_scale`` gives the backbone a fraction of the learning rate (:mod:`dan.training.optim`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from dan.data.batch import IMAGE, LABEL, VA, DeviceTransform
from dan.errors import DanError, MissingLabelsError
from dan.evaluation.metrics import ClassificationMetrics
from dan.evaluation.va_metrics import VA_NAMES, VAMetrics
from dan.models import DAN, AffinityLoss, DANOutput, PartitionLoss
from dan.models.freeze import freeze_backbone
from dan.models.loading import read_weights
from dan.models.losses import ccc_loss
from dan.models.metadata import ModelMetadata
from dan.models.tapconv import use_tap_convs
from dan.models.transfer import TransferReport, transfer_centres, transfer_weights
from dan.preprocess import Preprocessing
from dan.training.optim import build_optimizer, param_groups

__all__ = ["DANModule"]

# DANModule finishes the data module's uint8 batches in its own on_after_batch_transfer, on purpose: Lightning's
# remark that the module's hook is used although a data module was given is nothing a user can act on
warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer` in `LightningModule`")


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)


def _check_options(num_classes: int, affinity_centres: int | None, backbone_lr_scale: float, va_weight: float) -> None:
    """The numeric options no type annotation checks, each refused in one line naming its key."""
    if isinstance(va_weight, bool) or not isinstance(va_weight, (int, float)) or not 0 <= va_weight < math.inf:
        raise DanError(f"model.va_weight={va_weight!r}: expected a number >= 0")
    if affinity_centres is not None and affinity_centres < num_classes:
        raise DanError(f"model.affinity_centres={affinity_centres}: needs at least one per class ({num_classes})")
    if isinstance(backbone_lr_scale, bool) or not math.isfinite(backbone_lr_scale) or backbone_lr_scale < 0:
        raise DanError(f"model.backbone_lr_scale={backbone_lr_scale!r}: expected a number >= 0 (1.0: the same rate)")


class DANModule(LightningModule):
    """Trains and evaluates a DAN model.

    Args:
        num_classes: Number of classes (linked from the data module in configs).
        num_heads: Cross attention heads K.
        backbone: timm backbone name.
        backbone_weights: None, ``"timm"``, ``"msceleb"`` (the MS-Celeb ResNet-18, fetched once into the
            download cache) or a weights file's path.
        drop_rate: Dropout before the classifier.
        label_names: Class names (linked from the data module); stored in checkpoints.
        preprocessing: The model-input record (:meth:`dan.preprocess.Preprocessing.to_dict`: input size,
            mean, std, resize filter and how the data set's faces were cut out of photos), linked from
            the data module, whose loaders prepare images by the same record; stored in checkpoints.
            None: the defaults.
        trained_on: What it is trained on (linked from the data module,
            :class:`dan.data.provenance.TrainedOn`: the format, whether the faces are generated, the reader
            options, the splits and the training split's digest); stored in checkpoints, so inference can
            warn about a model of generated faces and ``dan evaluate`` reads the data set as training did.
        lambda_af: Weight of the affinity loss.
        lambda_pt: Weight of the partition loss.
        affinity_centres: Class centres of the affinity loss; None: one per class. The reference's
            RAF-DB script uses 8 for its 7 classes (the unused centre enters the variance
            normaliser); ``configs/rafdb.yaml`` sets 8 to reproduce it.
        optimizer: Optimiser factory (``class_path``/``init_args`` in YAML); gets all parameters.
        scheduler: Learning-rate scheduler factory; None for a constant rate. torch's schedulers step once
            per epoch; :class:`dan.training.schedules.WarmupCosineLR` steps every batch and takes its
            length from the trainer.
        channels_last: Train in channels-last memory format (faster convolutions on most hardware).
        compile: Wrap the network in ``torch.compile``.
        head: The attention heads: ``dan`` (the paper's) or ``mha`` (textbook multi-head dot-product
            attention, :mod:`dan.models.mha`).
        init_from: Start from a trained DAN: a released name (``rafdb``, ``affectnet7``, ``affectnet8``),
            a file, an https:// URL or an ``hf://`` path, read as :func:`dan.load_model` reads it (cache,
            SHA-256 pins, weights-only). Applied when training starts, not when a run resumes from its
            checkpoint; only the classes may differ (see :mod:`dan.models.transfer`).
        init_from_labels: The class names of a 7-class reference file given as a file (a label-set name
            or a list); released names and this package's files bring their own.
        freeze: Freeze the backbone's first stages: 0 or None none, ``n`` the first n (timm's coarse
            groups; ResNet: 1 the stem, 2 the stem and layer1, ... 5 all), ``backbone`` all of it.
            Frozen BatchNorms stay in eval mode.
        backbone_lr_scale: The backbone's learning rate as a fraction of the configured one (the
            heads, classifier and affinity centres keep it); 1.0: one group as before.
        va_head: Add the valence/arousal output (``Linear(C, 2)`` and tanh on the layer-normalised fused feature),
            trained on the batches' ``va`` (a data set that can carry them: AffectNet, ``dan synth``).
        va_weight: Weight of the concordance-correlation loss of the valence/arousal output.
    """

    _compiled: Callable[..., Any] | None  # torch.compile of the network, set with object.__setattr__
    _device_transform: DeviceTransform | None = None  # the batches' normalisation, built on first use

    def __init__(
        self,
        num_classes: int = 7,
        num_heads: int = 4,
        backbone: str = "resnet18",
        backbone_weights: str | None = None,
        drop_rate: float = 0.0,
        label_names: list[str] | None = None,
        preprocessing: dict | None = None,
        trained_on: dict | None = None,
        lambda_af: float = 1.0,
        lambda_pt: float = 1.0,
        affinity_centres: int | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = False,
        compile: bool = False,
        head: Literal["dan", "mha"] = "dan",
        init_from: str | None = None,
        init_from_labels: str | list[str] | None = None,
        freeze: int | Literal["backbone"] | None = None,
        backbone_lr_scale: float = 1.0,
        va_head: bool = False,
        va_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        _check_options(num_classes, affinity_centres, backbone_lr_scale, va_weight)
        self.model = DAN(
            num_classes,
            num_heads,
            backbone,
            drop_rate=drop_rate,
            backbone_weights=backbone_weights,
            head=head,
            va_head=bool(va_head),
        )
        self.model.labels = tuple(label_names) if label_names else tuple(f"class{i}" for i in range(num_classes))
        if len(self.model.labels) != num_classes:
            raise DanError(f"model.label_names has {len(self.model.labels)} names for {num_classes} classes")
        self.model.preprocessing = Preprocessing.from_dict(preprocessing, "model.")
        self.model.trained_on = dict(trained_on) if trained_on else None
        self.affinity = AffinityLoss(affinity_centres or num_classes, self.model.num_features)
        self.partition = PartitionLoss()
        self._frozen_norms = freeze_backbone(self.model.backbone, freeze)  # kept in eval mode while training
        self._weights_restored = False  # a checkpoint's weights were loaded: init_from does not apply
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.channels_last, self.compile_model = channels_last, compile
        self._make_metrics(num_classes, va_head)
        object.__setattr__(self, "_compiled", None)  # not a submodule: no duplicate weights in checkpoints

    def _make_metrics(self, num_classes: int, va_head: bool) -> None:
        """The running metrics: training accuracy, whole-split validation and test scores, the best so far."""
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = ClassificationMetrics(num_classes)
        self.test_metrics = ClassificationMetrics(num_classes)
        self.val_va = VAMetrics() if va_head else None  # whole-split CCC and RMSE (not per-batch means)
        self.test_va = VAMetrics() if va_head else None
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # kept in checkpoints, so a resumed run knows its best
        self.last_confusion: dict[str, torch.Tensor] = {}

    def configure_model(self) -> None:
        """Apply memory format and compilation once the module is on its device."""
        use_tap_convs(self.model.backbone)  # 3x3 convolutions on small CPU maps: per-tap products (faster)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.compile_model and self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def forward(self, x: torch.Tensor):
        """The network's :class:`dan.models.DANOutput`."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # not "self._compiled or self.model": a compiled module's truth value asks for its len(), which it refuses
        return (self.model if self._compiled is None else self._compiled)(x)

    def _inputs(self, batch: dict | tuple | list, channels_last: bool = False) -> dict:
        """The batch as a dict with float ``image`` input: uint8 faces normalised and erased where they are."""
        if not isinstance(batch, dict):  # the all-CPU pipeline's (images, labels) pairs
            x, y = batch
            batch = {IMAGE: x, LABEL: y}
        if batch[IMAGE].dtype != torch.uint8:
            return batch
        record = self.model.preprocessing
        if self._device_transform is None or self._device_transform.pre != record:
            object.__setattr__(self, "_device_transform", DeviceTransform(record))  # not state: never saved
        assert self._device_transform is not None
        return self._device_transform.batch(batch, channels_last)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Finish uint8 batches on the device they were copied to (pinned, non-blocking): normalise, erase.

        The data module's workers ship uint8 faces with their random-erasing rectangles
        (:mod:`dan.data.batch`); every key but ``erase`` passes through. Other batches are left as they are.
        """
        if isinstance(batch, dict) and IMAGE in batch:
            return self._inputs(batch, self.channels_last)
        return batch

    def setup(self, stage: str) -> None:
        """Refuse a valence/arousal model on a data set without them, before any step (one line, naming the key)."""
        data = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if not self.model.has_va or data is None or not hasattr(data, "has_va"):
            return
        if not data.has_va:
            raise DanError(
                f"model.va_head: true, but the {data.format} data set at {data.root} has no valence/arousal "
                "(AffectNet's lists have them, and dan synth writes EmoLabel/valence_arousal.txt); "
                "set model.va_head: false"
            )
        if not getattr(data, "device_transforms", True):
            raise DanError(
                "model.va_head: true needs data.device_transforms: true (the all-CPU pipeline's batches carry no "
                "valence/arousal)"
            )

    def _losses(
        self, x: torch.Tensor, y: torch.Tensor, va: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], DANOutput]:
        out = self(x)
        ce = F.cross_entropy(out.logits, y)
        af = self.affinity(out.features.float(), y)
        pt = self.partition(out.heads.float())
        loss = ce + self.hparams["lambda_af"] * af + self.hparams["lambda_pt"] * pt
        losses = {"loss": loss, "ce": ce, "af": af, "pt": pt}
        if out.va is not None:
            target = va if va is not None else torch.full_like(out.va, float("nan"))  # (B, 2): nothing known
            ccc = ccc_loss(out.va, target)
            losses["loss"] = loss + self.hparams.get("va_weight", 1.0) * ccc
            losses["ccc_loss"] = ccc
        return losses, out

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        batch = self._inputs(batch)  # a no-op after on_after_batch_transfer
        x, y = batch[IMAGE], batch[LABEL]
        losses, out = self._losses(x, y, batch.get(VA))
        logits = out.logits
        # the finiteness check reads the loss back from the device: only at logging intervals (a sync)
        try:
            # set by Lightning's logger connector, undeclared on Trainer
            every = max(int(self.trainer.log_every_n_steps or 1), 1)  # type: ignore[attr-defined]
        except RuntimeError:  # a step called outside a Trainer (tests, notebooks): check every time
            every = 1
        if batch_idx % every == 0 and not torch.isfinite(losses["loss"]):
            parts = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise DanError(
                f"training loss is not finite at step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}): {parts}; lower the learning rate or check the data"
            )
        self.train_acc(logits.argmax(-1), y)
        # sync_dist: the epoch means are over every rank's batches (the step values too: a few scalars)
        losses_by_name = {f"train/{k}": v for k, v in losses.items()}
        self.log_dict(losses_by_name, prog_bar=False, on_step=True, on_epoch=True, sync_dist=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return losses["loss"]

    def _eval_step(self, batch, stage: str, metrics: ClassificationMetrics) -> None:
        batch = self._inputs(batch)
        x, y = batch[IMAGE], batch[LABEL]
        losses, out = self._losses(x, y, batch.get(VA))
        metrics.update(out.logits.argmax(-1), y)
        va_metrics = self.val_va if stage == "val" else self.test_va
        if va_metrics is not None and out.va is not None and VA in batch:
            va_metrics.update(out.va, batch[VA])
        self.log(f"{stage}/loss", losses["loss"], on_epoch=True, sync_dist=True, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def _log_epoch(self, stage: str, metrics: ClassificationMetrics) -> dict[str, torch.Tensor]:
        values = metrics.compute()  # synchronised across DDP ranks by torchmetrics
        metrics.reset()
        logged = {f"{stage}/acc": values["acc"], f"{stage}/bacc": values["bacc"]}
        assert self.model.labels is not None  # set in __init__
        for i, name in enumerate(self.model.labels):
            logged[f"{stage}/recall/{name}"] = values["recall"][i]
            logged[f"{stage}/f1/{name}"] = values["f1"][i]
        va_metrics = self.val_va if stage == "val" else self.test_va
        if va_metrics is not None and va_metrics.update_called:  # whole-split CCC and RMSE, summed over ranks
            va = va_metrics.compute()
            va_metrics.reset()
            logged.update(
                {f"{stage}/{kind}_{name}": va[f"{kind}_{name}"] for kind in ("ccc", "rmse") for name in VA_NAMES}
            )
        # already reduced over ranks; sync_dist only averages identical values (and keeps Lightning quiet)
        self.log_dict(logged, prog_bar=stage == "val", sync_dist=True)
        self.last_confusion[stage] = values["confusion"].detach().cpu()
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val", self.val_metrics)
        if not self.trainer.sanity_checking:
            self.val_acc_best(values["acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_metrics)

    def start_from(self, spec: str, labels: str | list[str] | None = None) -> TransferReport:
        """Load a trained DAN's weights into this module (``init_from``) and print what was kept.

        Args:
            spec: A released model name, a file, an https:// URL or an ``hf://`` path.
            labels: Class names of a 7-class reference file (``init_from_labels``).

        Returns:
            The :class:`dan.models.transfer.TransferReport`.

        Raises:
            DanError: The source cannot be had or read, or differs in more than its classes.
        """
        try:
            source = read_weights(spec, labels)
        except MissingLabelsError as err:
            raise err.for_option("--model.init_from_labels") from None
        report = transfer_weights(self.model, source)
        centres = transfer_centres(self.affinity.centers, source, report.match)
        report = dataclasses.replace(report, centres=centres)
        self.model.started_from = {"spec": str(spec), "checksum": source.checksum, "labels": list(source.labels)}
        if getattr(self._trainer, "global_rank", 0) == 0:
            config = source.model_config
            print(
                f"init_from {spec}: {source.path} ({len(source.labels)} classes, {config.get('backbone')}, "
                f"{config.get('num_heads')} heads; weights {source.checksum[:23]}...)",
                flush=True,
            )
            for line in report.lines():
                print(f"  {line}", flush=True)
            ours, theirs = self.model.preprocessing, source.preprocessing
            fields = ("input_size", "mean", "std", "crop")
            changed = [
                f"{f} {getattr(theirs, f)} -> {getattr(ours, f)}"
                for f in fields
                if getattr(ours, f) != getattr(theirs, f)
            ]
            if changed:
                print(f"  note: this run prepares inputs unlike the source: {', '.join(changed)}", flush=True)
        return report

    def on_fit_start(self) -> None:
        """Apply ``init_from`` (after a resumed run's checkpoint was restored: then it does not apply)."""
        spec = self.hparams.get("init_from")
        if spec and not self._weights_restored:
            self.start_from(spec, self.hparams.get("init_from_labels"))

    def on_train_start(self) -> None:
        """Frozen BatchNorms to eval mode (after Lightning's check that every module starts in train mode)."""
        for module in self._frozen_norms:
            module.eval()

    def train(self, mode: bool = True):
        """Train mode, except for frozen BatchNorms, which keep the source's statistics."""
        super().train(mode)
        if mode:
            for module in self._frozen_norms:
                module.eval()
        return self

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint's weights win over ``init_from``; keep what the run started from."""
        self._weights_restored = True
        started = checkpoint.get("dan", {}).get("started_from") if isinstance(checkpoint.get("dan"), dict) else None
        if isinstance(started, dict):
            self.model.started_from = dict(started)

    def configure_optimizers(self):
        scale = float(self.hparams.get("backbone_lr_scale", 1.0))
        optimizer = build_optimizer(self.optimizer_factory, param_groups(self.named_parameters(), scale), scale)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if getattr(scheduler, "total_steps", 0) is None:  # a schedule that sizes itself (WarmupCosineLR)
            scheduler.set_total_steps(int(self.trainer.estimated_stepping_batches))
        interval = getattr(scheduler, "interval", "epoch")  # torch's own schedulers step once per epoch
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # settings, label names, preprocessing and a checksum of the network's weights (the "model." entries,
        # as dan.load_model reads them), so that this file alone rebuilds the model and a damaged one is caught
        state = {k[len("model.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
        checkpoint["dan"] = ModelMetadata.of_model(self.model, state).to_dict()
