"""dan: DAN (Distract Your Attention) facial expression recognition.

Quick use::

    import dan
    model = dan.load_model("rafdb_epoch21_acc0.897_bacc0.8275.pth", labels="rafdb")
    out = model(images)          # DANOutput(logits, features, heads, attention)
"""

from dan.common import LABEL_SETS, DanError, Preprocessing
from dan.models import DAN, DANOutput, load_model, save_model

__version__ = "0.1.0"

__all__ = ["DAN", "LABEL_SETS", "DANOutput", "DanError", "Preprocessing", "__version__", "load_model", "save_model"]
