"""Starting a model from another trained DAN (``model.init_from``): load what fits, keep classes by name.

Every tensor of the source with this model's name and shape is loaded. The classifier (``fc`` and the
final BatchNorm1d ``bn``) is matched class by class: a class whose canonical name both label sets hold
keeps its row of ``fc.weight``/``fc.bias`` and its entries of ``bn.weight``/``bn.bias``/
``bn.running_mean``/``bn.running_var``; the others keep the fresh model's initialisation. The affinity
loss's class centres follow the same rule when the source has them (this package's Lightning
checkpoints do, under ``affinity.centers``; a reference file or a ``.pt`` weights file does not: then
every centre starts fresh). The valence/arousal layer (``va.*``) is loaded when both models have it,
starts fresh when only this one has it, and is dropped when only the source has it. Anything else that
does not fit (another backbone, another number of heads) is refused: only the classifier may differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dan.errors import DanError
from dan.models.backbone import state_dict_mismatch
from dan.models.dan import DAN
from dan.models.loading import StoredWeights
from dan.vocab import ClassMatch, canonical_class_name, match_classes

__all__ = ["CLASS_ROWS", "TransferReport", "transfer_centres", "transfer_weights"]

CLASS_ROWS = ("fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
VA_KEYS = ("va.weight", "va.bias")  # the optional valence/arousal layer


@dataclass(frozen=True)
class TransferReport:
    """What :func:`transfer_weights` (and :func:`transfer_centres`) did, for the run's log.

    Attributes:
        match: The classes kept, new and dropped.
        loaded: Tensors loaded whole.
        by_class: Classifier tensors loaded class by class (empty when the label sets are the same).
        centres: What happened to the affinity centres, in words.
        va: What happened to the valence/arousal layer, in words ("" when neither model has one).
    """

    match: ClassMatch
    loaded: int
    by_class: tuple[str, ...]
    centres: str = "not transferred"
    va: str = ""

    def lines(self) -> list[str]:
        """The report, a line per item."""
        m = self.match
        out = [f"kept classes ({len(m.shared)}): " + (", ".join(m.shared) or "none")]
        out.append(f"new classes ({len(m.target_only)}): " + (", ".join(m.target_only) or "none"))
        out.append(f"dropped classes ({len(m.source_only)}): " + (", ".join(m.source_only) or "none"))
        rows = f"; loaded class by class: {', '.join(self.by_class)}" if self.by_class else ""
        out.append(f"tensors: {self.loaded} loaded whole{rows}; none left out")
        out.append(f"affinity centres: {self.centres}")
        if self.va:
            out.append(f"valence/arousal layer: {self.va}")
        return out


def transfer_weights(model: DAN, source: StoredWeights) -> TransferReport:
    """Load ``source`` into ``model``: every tensor that fits, the classifier by class name.

    Args:
        model: The new model; its ``labels`` name its classes.
        source: The trained model's weights (:func:`dan.models.loading.read_weights`).

    Returns:
        The :class:`TransferReport` (centres not transferred: see :func:`transfer_centres`).

    Raises:
        DanError: A tensor outside the classifier that the model lacks, or one of another shape
            (another backbone or number of heads); nothing is loaded then.
    """
    own = model.state_dict()
    outside = {k: v for k, v in own.items() if k not in CLASS_ROWS + VA_KEYS}
    theirs = {k: v for k, v in source.state.items() if k not in CLASS_ROWS + VA_KEYS}
    problem = state_dict_mismatch(outside, theirs)
    config = source.model_config
    if problem:
        raise DanError(
            f"{source.path}: does not fit this model outside the classifier ({problem}): the source is "
            f"{config.get('backbone', 'resnet18')} with {config.get('num_heads', '?')} {config.get('head', 'dan')} "
            f"heads, this model {model.backbone_name} with {model.num_heads} {model.head_type} heads; only the "
            "classes may differ: set model.backbone, model.num_heads and model.head as the source has them"
        )
    labels = model.labels or tuple(f"class{i}" for i in range(model.num_classes))
    match = match_classes(source.labels, labels)
    state = dict(theirs)
    by_class: list[str] = []
    same = tuple(map(canonical_class_name, source.labels)) == tuple(map(canonical_class_name, labels))
    for key in CLASS_ROWS:
        if key not in own:
            continue
        src = source.state.get(key)
        if src is None or src.shape[1:] != own[key].shape[1:] or src.shape[0] != len(source.labels):
            raise DanError(
                f"{source.path}: classifier tensor {key} is missing or does not fit its {len(source.labels)} classes"
            )
        if same and src.shape == own[key].shape:
            state[key] = src
            continue
        rows = own[key].detach().clone()
        for i, j in match.pairs:
            rows[j] = src[i]
        state[key] = rows
        by_class.append(key)
    loaded = len(state) - len(by_class)
    va = _transfer_va(own, source.state, state)
    loaded += len(VA_KEYS) if va == "loaded" else 0
    with torch.no_grad():
        model.load_state_dict(state)
    return TransferReport(match, loaded, tuple(by_class), va=va)


def _transfer_va(own: dict, theirs: dict, state: dict) -> str:
    """Put the valence/arousal layer into ``state`` (the source's, or this model's fresh one); what was done."""
    mine, source = all(k in own for k in VA_KEYS), all(k in theirs for k in VA_KEYS)
    if mine and source and all(own[k].shape == theirs[k].shape for k in VA_KEYS):
        state.update({k: theirs[k] for k in VA_KEYS})
        return "loaded"
    if mine:
        state.update({k: own[k] for k in VA_KEYS})
        return "new (the source has none)"
    return "dropped (this model has none)" if source else ""


def transfer_centres(centres: nn.Parameter, source: StoredWeights, match: ClassMatch) -> str:
    """Copy the source's affinity centres of the kept classes into ``centres`` (rows by class).

    Args:
        centres: The new affinity loss's centres (N_c x D).
        source: The source; its ``rest`` holds ``affinity.centers`` when it is one of our checkpoints.
        match: :func:`dan.vocab.match_classes` of the source's and the model's labels.

    Returns:
        What was done, in words.
    """
    theirs = source.rest.get("affinity.centers")
    if theirs is None:
        return "the source has none (not a training checkpoint): all start fresh"
    if theirs.ndim != 2 or theirs.shape[1] != centres.shape[1]:
        return f"the source's are {tuple(theirs.shape)}, not (*, {centres.shape[1]}): all start fresh"
    kept = [(i, j) for i, j in match.pairs if i < theirs.shape[0] and j < centres.shape[0]]
    with torch.no_grad():
        for i, j in kept:
            centres[j] = theirs[i].to(centres.dtype)
    return f"{len(kept)} of {centres.shape[0]} kept from the source, the rest start fresh"
