"""Training: the LightningModule, its callbacks, checkpoint I/O and resumption, and the LightningCLI.

The only place Lightning's training loop lives; the network itself (:mod:`dan.models`) has no
Lightning in it, and scoring a trained model is :mod:`dan.evaluation`'s (the metrics are defined there
once, for training and for ``dan evaluate``).
"""

from dan.training.module import DANModule

__all__ = ["DANModule"]
