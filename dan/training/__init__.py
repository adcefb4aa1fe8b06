"""Training and evaluation: the LightningModule, metrics, callbacks and the evaluation report.

The only place Lightning's training loop lives; the network itself (:mod:`dan.models`) has no
Lightning in it.
"""

from dan.training.module import DANModule

__all__ = ["DANModule"]
