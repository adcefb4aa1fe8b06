"""DAN: Distract Your Attention, a multi-head cross attention network for facial expressions.

Paper: "Distract Your Attention: Multi-head Cross Attention Network for Facial Expression
Recognition", Zhengyao Wen, Wenzhong Lin, Tao Wang, Ge Xu, 2021 (arXiv 2109.07270).

Three parts: the Feature Clustering Network (a CNN backbone, trained with the affinity loss), the
Multi-head cross Attention Network (K heads, :mod:`dan.models.heads`) and the Attention Fusion
Network (log-softmax across heads, sum, Linear + BatchNorm1d classifier; trained with the
partition loss). Numerically the same function as the reference implementation.

``head="mha"`` swaps DAN's heads for K heads of textbook scaled dot-product attention
(:mod:`dan.models.mha`), for ablations; the rest of the network is the same.

``va_head=True`` adds a regression output beside the classes (ours, not the paper's): a linear layer
on the fused feature the classifier reads (normalised per face), then tanh: ``va`` = (valence,
arousal) in [-1, 1], trained with the concordance-correlation loss (:func:`dan.models.losses.ccc_loss`).
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from dan.models.backbone import FeatureBackbone, create_backbone, load_backbone_weights
from dan.models.heads import MultiHeadCrossAttention
from dan.models.mha import MultiHeadDotProductAttention
from dan.preprocess import Preprocessing

__all__ = ["DAN", "HEAD_TYPES", "DANOutput"]

# model.head -> the module computing the K heads; each maps (B, C, H, W) to (B, K, C) (+ maps (B, K, H, W))
HEAD_TYPES = {"dan": MultiHeadCrossAttention, "mha": MultiHeadDotProductAttention}


class DANOutput(NamedTuple):
    """What one forward pass gives.

    Attributes:
        logits: Class scores, shape (B, num_classes).
        features: Backbone feature map F, shape (B, C, H, W) (the affinity loss uses it).
        heads: Head tensor after the fusion's log-softmax, shape (B, K, C) (the partition loss
            uses it).
        attention: Spatial attention maps, shape (B, K, H, W), when asked for; else None. With
            ``head="mha"``: each head's attention weights over the H x W tokens (each map sums to 1).
        va: (valence, arousal) in [-1, 1], shape (B, 2), for a model with ``va_head``; else None.
    """

    logits: torch.Tensor
    features: torch.Tensor
    heads: torch.Tensor
    attention: torch.Tensor | None = None
    va: torch.Tensor | None = None


class DAN(nn.Module):
    """The DAN network.

    Args:
        num_classes: Number of expression classes C.
        num_heads: Number of cross attention heads K (>= 1).
        backbone: timm model name of the feature clustering network.
        in_chans: Input image channels.
        drop_rate: Dropout before the classifier (0 in the paper).
        backbone_weights: None for random initialisation, ``"timm"`` for timm's pretrained weights,
            ``"msceleb"`` for the MS-Celeb ResNet-18 (``resnet18_msceleb.pth``, fetched once into the
            download cache), or the path of a weights file.
        head: ``"dan"``: the paper's spatial-then-channel attention heads; ``"mha"``: textbook
            multi-head dot-product attention from learned queries (:mod:`dan.models.mha`).
        va_head: Add the valence/arousal output: ``Linear(C, 2)`` on the fused feature (layer-normalised), then tanh.

    Attributes:
        labels: Class names, index i naming output i, or None when unknown. Set by
            :func:`dan.load_model` and by training.
        preprocessing: How inputs must be prepared (size, mean, std).
        trained_on: What it was trained on (``{"format": ..., "synthetic": bool, "read": {...}, ...}``,
            :class:`dan.data.provenance.TrainedOn`), when known.
        started_from: What its training started from (``{"spec", "checksum", "labels"}``, see
            :class:`dan.models.metadata.ModelMetadata`), or None.
        temperature: The calibrated temperature T (``dan calibrate``; probabilities are softmax(logits / T),
            applied by the runtimes, never by ``forward``), or None (T = 1).
        calibration: How ``temperature`` was fitted, or None.
        head_type: ``"dan"`` or ``"mha"`` (the ``head`` argument; ``model_config["head"]``).
        va: The valence/arousal layer (``Linear(C, 2)``), or None without ``va_head``.
    """

    def __init__(
        self,
        num_classes: int = 7,
        num_heads: int = 4,
        backbone: str = "resnet18",
        in_chans: int = 3,
        drop_rate: float = 0.0,
        backbone_weights: str | None = None,
        head: str = "dan",
        va_head: bool = False,
    ) -> None:
        super().__init__()
        if head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {', '.join(HEAD_TYPES)}, got {head!r}")
        self.num_classes = num_classes
        self.num_heads = num_heads
        self.backbone_name = backbone
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.head_type = head
        self.backbone = create_backbone(backbone, in_chans=in_chans, pretrained=backbone_weights == "timm")
        if backbone_weights and backbone_weights != "timm":
            load_backbone_weights(self.backbone, backbone_weights)
        self.num_features: int = cast(FeatureBackbone, self.backbone).num_features
        self.heads = HEAD_TYPES[head](self.num_features, num_heads)
        self.drop: nn.Dropout | nn.Identity = nn.Dropout(drop_rate)  # Identity once re-parameterised
        self.fc = nn.Linear(self.num_features, num_classes)
        self.bn: nn.BatchNorm1d | nn.Identity = nn.BatchNorm1d(num_classes)  # Identity once re-parameterised
        self.va: nn.Linear | None = nn.Linear(self.num_features, 2) if va_head else None
        self.labels: tuple[str, ...] | None = None
        self.preprocessing = Preprocessing()
        self.trained_on: dict | None = None
        self.started_from: dict | None = None
        self.temperature: float | None = None
        self.calibration: dict | None = None

    @property
    def has_va(self) -> bool:
        """Whether the model has the valence/arousal output."""
        return self.va is not None

    @property
    def model_config(self) -> dict:
        """The constructor arguments that rebuild this architecture (plain types, no weights path).

        ``va_head`` is there only when True, so a model without it keeps the record it always had.
        """
        config = {
            "num_classes": self.num_classes,
            "num_heads": self.num_heads,
            "backbone": self.backbone_name,
            "in_chans": self.in_chans,
            "drop_rate": self.drop_rate,
            "head": self.head_type,
        }
        if self.va is not None:
            config["va_head"] = True
        return config

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map F, (B, 3, H0, W0) -> (B, C, H, W)."""
        return cast(FeatureBackbone, self.backbone).forward_features(x)

    def forward_head(self, heads: torch.Tensor) -> torch.Tensor:
        """Attention fusion and classifier.

        Args:
            heads: Head outputs, shape (B, K, C), after the log-softmax across heads.

        Returns:
            Logits, shape (B, num_classes).
        """
        return self.bn(self.fc(self.fused(heads)))

    def fused(self, heads: torch.Tensor) -> torch.Tensor:
        """The fused feature the classifier (and the valence/arousal layer) reads: (B, K, C) -> (B, C)."""
        return self.drop(heads.sum(dim=1))  # (B, C)

    def forward_va(self, z: torch.Tensor) -> torch.Tensor | None:
        """(valence, arousal) in [-1, 1] of the fused feature ``z`` (B, C): (B, 2); None without ``va_head``.

        ``z`` is first normalised per face (a layer norm without parameters): it is a sum of the heads'
        log-probabilities, whose scale grows as the partition loss spreads the heads apart (to hundreds),
        and a linear layer on it drove tanh into saturation, where no gradient flows (measured: CCC 0 and
        a constant output from the first epoch on).
        """
        if self.va is None:
            return None
        return torch.tanh(self.va(F.layer_norm(z, z.shape[-1:])))  # (B, 2)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> DANOutput:
        """Run the network.

        Args:
            x: Normalised RGB images, shape (B, 3, H0, W0).
            return_attention: Also return the heads' spatial attention maps.

        Returns:
            A :class:`DANOutput`.
        """
        features = self.forward_features(x)  # (B, C, H, W)
        if return_attention:
            heads, attention = self.heads(features, return_attention=True)  # (B, K, C), (B, K, H, W)
        else:
            heads, attention = self.heads(features), None  # (B, K, C)
        if self.num_heads > 1:
            heads = torch.log_softmax(heads, dim=1)  # across heads
        z = self.fused(heads)  # (B, C)
        logits = self.bn(self.fc(z))
        return DANOutput(logits, features, heads, attention, self.forward_va(z))
