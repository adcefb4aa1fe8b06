"""The LightningModule for DAN: losses, metrics and optimiser around the plain :class:`dan.models.DAN`.

L = CE(logits, y) + lambda_af * L_af + lambda_pt * L_pt (docs/design.md, losses). The affinity
loss's class centres are parameters of this module, so the configured optimiser trains them with
the network. Metric keys: ``train/loss``, ``train/ce``, ``train/af``, ``train/pt``, ``train/acc``,
``val/loss``, ``val/acc``, ``val/bacc``, ``val/acc_best``, ``val/recall/<class>``, ``val/f1/<class>``
and the same under ``test/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from dan.common import DanError, Preprocessing
from dan.evaluation.metrics import ClassificationMetrics
from dan.models import DAN, AffinityLoss, PartitionLoss, checkpoint_metadata

__all__ = ["DANModule"]


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)


class DANModule(LightningModule):
    """Trains and evaluates a DAN model.

    Args:
        num_classes: Number of classes (linked from the data module in configs).
        num_heads: Cross attention heads K.
        backbone: timm backbone name.
        backbone_weights: None, ``"timm"``, or the MS-Celeb ResNet-18 file (``resnet18_msceleb.pth``).
        drop_rate: Dropout before the classifier.
        label_names: Class names (linked from the data module); stored in checkpoints.
        image_size: Input size (linked from the data module); stored in checkpoints.
        face_crop: How the data set's faces were cut out of photos (linked from the data module:
            ``crop``, ``face_size``, ``margin`` of :class:`dan.common.Preprocessing`); stored in checkpoints.
        trained_on: The data set's format and whether its faces are generated (linked from the data
            module); stored in checkpoints, so inference can warn about a model of generated faces.
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
    """

    _compiled: Callable[..., Any] | None  # torch.compile of the network, set with object.__setattr__

    def __init__(
        self,
        num_classes: int = 7,
        num_heads: int = 4,
        backbone: str = "resnet18",
        backbone_weights: str | None = None,
        drop_rate: float = 0.0,
        label_names: list[str] | None = None,
        image_size: int = 224,
        face_crop: dict | None = None,
        trained_on: dict | None = None,
        lambda_af: float = 1.0,
        lambda_pt: float = 1.0,
        affinity_centres: int | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = False,
        compile: bool = False,
        head: Literal["dan", "mha"] = "dan",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.model = DAN(
            num_classes, num_heads, backbone, drop_rate=drop_rate, backbone_weights=backbone_weights, head=head
        )
        self.model.labels = tuple(label_names) if label_names else tuple(f"class{i}" for i in range(num_classes))
        if len(self.model.labels) != num_classes:
            raise DanError(f"model.label_names has {len(self.model.labels)} names for {num_classes} classes")
        self.model.preprocessing = Preprocessing.from_dict({"input_size": image_size, **(face_crop or {})}, "model.")
        self.model.trained_on = dict(trained_on) if trained_on else None
        if affinity_centres is not None and affinity_centres < num_classes:
            raise DanError(f"model.affinity_centres={affinity_centres}: needs at least one per class ({num_classes})")
        self.affinity = AffinityLoss(affinity_centres or num_classes, self.model.num_features)
        self.partition = PartitionLoss()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.channels_last, self.compile_model = channels_last, compile
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = ClassificationMetrics(num_classes)
        self.test_metrics = ClassificationMetrics(num_classes)
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # kept in checkpoints, so a resumed run knows its best
        self.last_confusion: dict[str, torch.Tensor] = {}
        object.__setattr__(self, "_compiled", None)  # not a submodule: no duplicate weights in checkpoints

    def configure_model(self) -> None:
        """Apply memory format and compilation once the module is on its device."""
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.compile_model and self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def forward(self, x: torch.Tensor):
        """The network's :class:`dan.models.DANOutput`."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return (self._compiled or self.model)(x)

    def _losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        out = self(x)
        ce = F.cross_entropy(out.logits, y)
        af = self.affinity(out.features.float(), y)
        pt = self.partition(out.heads.float())
        loss = ce + self.hparams["lambda_af"] * af + self.hparams["lambda_pt"] * pt
        return {"loss": loss, "ce": ce, "af": af, "pt": pt}, out.logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        losses, logits = self._losses(x, y)
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
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, on_step=True, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return losses["loss"]

    def _eval_step(self, batch, stage: str, metrics: ClassificationMetrics) -> None:
        x, y = batch
        losses, logits = self._losses(x, y)
        metrics.update(logits.argmax(-1), y)
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

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
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
        checkpoint["dan"] = checkpoint_metadata(self.model, state)
