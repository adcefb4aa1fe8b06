"""The network, its heads, its losses and checkpoint reading. Only torch and timm here."""

from dan.models.checkpoint import convert_reference_state_dict, save_model
from dan.models.dan import DAN, DANOutput
from dan.models.heads import MultiHeadCrossAttention
from dan.models.loading import load_model
from dan.models.losses import AffinityLoss, PartitionLoss
from dan.models.mha import MultiHeadDotProductAttention

__all__ = [
    "DAN",
    "AffinityLoss",
    "DANOutput",
    "MultiHeadCrossAttention",
    "MultiHeadDotProductAttention",
    "PartitionLoss",
    "convert_reference_state_dict",
    "load_model",
    "save_model",
]
