"""A model's classes against a data set's, by name: what is scored and what is left out on each side.

A model scored on a data set with another label set is scored on the classes both have
(:attr:`ClassMatch.shared`); the data set's images of a class the model lacks are left out (the model
cannot predict it), and a prediction of a class the data set lacks counts as wrong. Names are
compared as they are: every label set of :data:`dan.vocab.LABEL_SETS` and every reader uses the
canonical class names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dan.errors import DanError

__all__ = ["ClassMatch", "match_classes"]


@dataclass(frozen=True)
class ClassMatch:
    """A model's classes against a data set's, by name.

    Attributes:
        model_labels: The model's class names (its outputs' order).
        data_labels: The data set's class names (its label indices' order).
    """

    model_labels: tuple[str, ...]
    data_labels: tuple[str, ...]

    @property
    def shared(self) -> tuple[str, ...]:
        """The classes both have, in the data set's order: what is scored."""
        return tuple(name for name in self.data_labels if name in self.model_labels)

    @property
    def data_only(self) -> tuple[str, ...]:
        """The data set's classes the model lacks (their images are left out)."""
        return tuple(name for name in self.data_labels if name not in self.model_labels)

    @property
    def model_only(self) -> tuple[str, ...]:
        """The model's classes the data set lacks (a prediction of one counts as wrong)."""
        return tuple(name for name in self.model_labels if name not in self.data_labels)

    @property
    def data_to_scored(self) -> np.ndarray:
        """For each data set class, its index among :attr:`shared`, or -1 (left out): (C_data,)."""
        shared = self.shared
        return np.array([shared.index(n) if n in shared else -1 for n in self.data_labels], np.int64)

    @property
    def model_to_scored(self) -> np.ndarray:
        """For each model output, its index among :attr:`shared`, or -1 (a class the data set lacks): (C_model,)."""
        shared = self.shared
        return np.array([shared.index(n) if n in shared else -1 for n in self.model_labels], np.int64)

    @property
    def columns(self) -> np.ndarray:
        """The model output of each shared class, in :attr:`shared` order: (C_shared,)."""
        return np.array([self.model_labels.index(n) for n in self.shared], np.int64)

    def check(self) -> None:
        """Raise :class:`DanError` when the two label sets share no class (nothing could be scored)."""
        if not self.shared:
            raise DanError(
                f"the model's classes ({', '.join(self.model_labels)}) share none with the data set's "
                f"({', '.join(self.data_labels)}): pass --labels to name the model's classes"
            )


def match_classes(model_labels: tuple[str, ...], data_labels: tuple[str, ...]) -> np.ndarray:
    """For each model output, the data set's class index of the same name (-1 where the data set lacks it).

    A data set class the model lacks is not an error (its images are left out by
    :func:`dan.evaluation.evaluate.evaluate_backend`; see :class:`ClassMatch`).

    Raises:
        DanError: The two share no class.
    """
    ClassMatch(tuple(model_labels), tuple(data_labels)).check()
    return np.array([data_labels.index(n) if n in data_labels else -1 for n in model_labels])
