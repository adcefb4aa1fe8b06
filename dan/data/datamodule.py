"""Lightning data module over every supported data set format.

``num_classes``, ``label_names`` and the model-input record ``preprocessing`` are known right after
``__init__`` (from the format's record, the given ``num_classes`` or a folder listing, and the image
options), so LightningCLI can link them to the model: the training transforms and the model take the
one :class:`dan.preprocess.Preprocessing` built here.
The root is checked in ``__init__``; lists and columns are read and checked in :meth:`setup` (the
training split already when LightningCLI links :attr:`FERDataModule.trained_on` into the model, whose
record holds its digest), so every mistake surfaces as a one-line :class:`dan.errors.DanError` before
the first step. Every split is read through the format's record with one
:class:`dan.data.options.ReadOptions` (:attr:`FERDataModule.read_options`), the one ``dan evaluate`` and
``dan calibrate`` rebuild from the model's record.

Batches are dicts (:mod:`dan.data.batch`): the workers ship uint8 faces, each with its random-erasing
rectangle, and the model normalises and erases them on its device (``DANModule.on_after_batch_transfer``),
a quarter of the bytes through shared memory, pinning and the host-to-device copy. A data set that can
have valence and arousal (:attr:`FERDataModule.has_va`) adds each face's to its batches (``va``, float32
(B, 2), NaN where unknown), for a model with the valence/arousal output (``model.va_head``); the all-CPU
pipeline's pairs do not carry them.
``device_transforms=False`` keeps the older all-CPU pipeline (float32 ``(images, labels)`` pairs), for
comparison (``scripts/bench/data.py``, ``scripts/maint/gpu_check.py``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from dan.data.batch import collate
from dan.data.dataset import FERDataset
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.packed_store import is_url
from dan.data.provenance import TrainedOn
from dan.data.sampler import EpochSampler
from dan.data.samples import SplitData
from dan.data.synth import read_manifest
from dan.data.transforms import TRANSFORMS, Transform
from dan.errors import DanError
from dan.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

__all__ = ["FERDataModule", "ResumableLoader"]


class ResumableLoader(DataLoader):
    """The training loader. Its position in an epoch is restored through its sampler
    (:meth:`FERDataModule.resume`, called by :class:`dan.training.resume.ResumableTraining`); the
    ``state_dict`` / ``load_state_dict`` pair only tells Lightning that a mid-epoch resume is handled."""

    def state_dict(self) -> dict:
        """Nothing of its own to save: the position and the seeds live in the resume checkpoint entry."""
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore here (see the class docstring)."""


class FERDataModule(pl.LightningDataModule):
    """Train/val/test data loaders for RAF-DB, AffectNet, FER2013 or a class-folder tree.

    Args:
        format: A data set layout (:data:`dan.vocab.FORMAT_NAMES`): ``rafdb`` (also ``dan synth``
            output), ``affectnet``, ``fer2013`` or ``folder``; its record
            (:class:`dan.data.formats.DataFormat`) says everything else about it.
        root: The data set's root folder.
        num_classes: AffectNet: 7 or 8 (default 8). Others: None (fixed, or the folder count).
        train_split: Training split name.
        val_split: Validation split; default the data set's own (affectnet ``validation``, fer2013
            ``PublicTest``, folder ``val``). A data set without one (RAF-DB, a folder tree without
            ``val/``) validates on ``val_fraction`` of its training split instead, never on its test
            split; name a split here to override (``test`` reproduces the reference's RAF-DB protocol,
            which selects its best epoch on the test split; ``val`` on RAF-DB is an error).
        val_fraction: Share of the training split held out for validation when there is no
            validation split (stratified by class, seeded by ``seed``).
        test_split: Test split; default the format's (rafdb ``test``, fer2013 ``PrivateTest``,
            affectnet ``validation``, folder ``test`` or else ``val``).
        image_size: Side of the square model input in pixels.
        mean: Per-channel RGB mean in [0, 1] the inputs are normalised with (ImageNet's by default).
        std: Per-channel RGB standard deviation in [0, 1] (ImageNet's by default).
        resize: Resize filter (:data:`dan.vocab.RESIZE_NAMES`; ``bilinear`` is torchvision's
            ``Resize`` on PIL images).
        augment: Training pipeline (:data:`dan.vocab.TRANSFORMS`): ``rafdb``, ``affectnet``, ``flip``,
            ``eval`` or ``none``.
        batch_size: Training batch size (per device).
        eval_batch_size: Validation/test batch size; default ``batch_size``.
        num_workers: DataLoader worker processes.
        balanced_sampler: Sample training images by inverse class frequency (with replacement).
        skip_bad_files: Skip and count unreadable images instead of stopping.
        rafdb_images, fold, folds, split_seed, peak_frames, first_frame_neutral, soft_targets: The
            reader options (the ``data.`` keys of :class:`dan.data.options.ReadOptions`, whose fields they
            are, defaults included): RAF-DB's image variant, CK+'s test fold (the next one validates, the
            others train; run 0 .. folds - 1 and average), fold count, split seed (also ExpW's; not
            ``seed``, so ``dan evaluate`` finds the same test split), peak frames and first frame as
            neutral, FERPlus's vote fractions. Built once into :attr:`read_options`, recorded in
            :attr:`trained_on`.
        pin_memory: Pin batches in page-locked memory, so the copy to the GPU runs asynchronously; None
            (the default): when the trainer trains on a CUDA device.
        device_transforms: Normalise and erase on the training device (uint8 batches); False: the whole
            pipeline in the workers (float32 batches), as before.
        device_resize: With ``device_transforms``, the side the workers resize training faces to and
            augment them at (RAF-DB's aligned faces are 100 px: no resize in the workers at all); the
            device resizes them to ``image_size`` (antialiased, within one level of PIL's resize). Fewer
            bytes and less worker CPU; the inputs then differ from the exact contract by that level and by
            augmenting before the last resize. Validation and test batches keep the exact contract. None:
            off.
        seed: Seed of the training order (shuffled or balanced draws), of every sample's augmentation
            and of the validation hold-out; default the global seed (``seed_everything``).

    Attributes:
        num_classes: Number of classes.
        read_options: The :class:`dan.data.options.ReadOptions` every split is read with (``num_classes``
            resolved).
        label_names: Class names, index ``i`` naming label ``i``.
        data_format: The format's record (:class:`dan.data.formats.DataFormat`).
        preprocessing: The model-input record: the image options above and the format's face crop
            (how its faces were cut out of photos). Every loader here prepares images by it, and the
            model stores it (``data.preprocessing`` is linked to ``model.preprocessing``).
        has_va: Whether the data set can carry valence and arousal (its record's
            :meth:`dan.data.formats.DataFormat.can_have_va`): then every batch has a ``va`` entry.
    """

    def __init__(
        self,
        format: str = "rafdb",
        root: str = "data/rafdb",
        num_classes: int | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        val_fraction: float = 0.1,
        test_split: str | None = None,
        image_size: int = 224,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        resize: str = "bilinear",
        augment: str = "rafdb",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        balanced_sampler: bool = False,
        skip_bad_files: bool = False,
        rafdb_images: str = ReadOptions.rafdb_images,
        fold: int = ReadOptions.fold,
        folds: int = ReadOptions.folds,
        split_seed: int = ReadOptions.split_seed,
        peak_frames: int = ReadOptions.peak_frames,
        first_frame_neutral: bool = ReadOptions.first_frame_neutral,
        soft_targets: bool = ReadOptions.soft_targets,
        pin_memory: bool | None = None,
        seed: int | None = None,
        device_transforms: bool = True,
        device_resize: int | None = None,
    ) -> None:
        super().__init__()
        self.data_format = get_format(format, "data.format")
        if augment not in TRANSFORMS:
            raise DanError(f"data.augment={augment!r}: choose one of {', '.join(TRANSFORMS)}")
        if not is_url(root) and not Path(root).exists():  # a packed set in object storage: checked on reading
            raise DanError(f"{root}: data root not found (data.root)")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise DanError("data.batch_size and data.eval_batch_size must be at least 1")
        if device_resize is not None and (device_resize < 8 or not device_transforms):
            raise DanError(
                f"data.device_resize={device_resize}: needs data.device_transforms: true and a side of 8 px or more"
            )
        if not 0.0 <= val_fraction < 1.0:
            raise DanError(f"data.val_fraction={val_fraction}: must be at least 0 and below 1")
        self.save_hyperparameters(ignore=["num_classes"])  # the model logs the resolved count
        self.format, self.root = format, str(root)
        try:  # the one reader options object (dan.data.options.ReadOptions), checked here
            read = ReadOptions(
                num_classes,
                rafdb_images,
                fold=fold,
                folds=folds,
                split_seed=split_seed,
                peak_frames=peak_frames,
                first_frame_neutral=first_frame_neutral,
                soft_targets=soft_targets,
            )
        except DanError as err:
            raise DanError(f"data.{err}") from None
        self.label_names: tuple[str, ...] = self.data_format.label_names(root, read)
        self.num_classes: int = len(self.label_names)
        self.read_options: ReadOptions = replace(read, num_classes=self.num_classes)
        self._read_splits: dict[str, SplitData] = {}  # each split read once (trained_on reads training's)
        self.train_split = train_split
        for key, split in (("data.val_split", val_split), ("data.test_split", test_split)):
            if split is not None:  # a role the data set lacks (RAF-DB's val) fails here, naming the key
                try:
                    self.data_format.resolve_split(root, split, self.read_options)
                except DanError as err:
                    raise DanError(f"{key}={split!r}: {err}") from None
        self._val_split, self._test_split = val_split, test_split
        self.has_va: bool = self.data_format.can_have_va(root, self.read_options)
        crop = self.data_format.crop(root, self.read_options)  # how the format's faces were cut out of photos
        self.preprocessing: Preprocessing = crop.preprocessing(
            "data.", input_size=image_size, mean=mean, std=std, resize=resize
        )
        self.val_fraction = val_fraction
        self.image_size, self.augment = image_size, augment
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.device_transforms, self.device_resize = device_transforms, device_resize
        self.balanced_sampler, self.skip_bad_files = balanced_sampler, skip_bad_files
        self.seed = int(torch.initial_seed() % 2**31) if seed is None else int(seed)
        self.hparams["seed"] = self.seed  # the checkpoint records the resolved seed (dan calibrate's hold-out)
        self._resume: tuple[int, int] | None = None
        self.train_dataset: FERDataset | None = None
        self.val_dataset: FERDataset | None = None
        self.test_dataset: FERDataset | None = None

    @property
    def val_split(self) -> str | None:
        """The validation split name: as given, else the data set's own; None when it is carved from training."""
        return self._val_split or self.data_format.default_splits(self.root, self.read_options)[1]

    @property
    def test_split(self) -> str:
        """The test split name: as given, else the format's (:meth:`dan.data.formats.DataFormat.default_splits`).

        Raises:
            DanError: The data set has no test split and none was named.
        """
        split = self._test_split or self.data_format.default_splits(self.root, self.read_options)[2]
        if split is None:
            raise DanError(f"{self.root}: no test split (no test/ or val/ folder): name one with data.test_split")
        return split

    def _read(self, split: str) -> SplitData:
        if split not in self._read_splits:
            self._read_splits[split] = self.data_format.read_split(self.root, split, self.read_options)
        return self._read_splits[split]  # class names checked

    def _dataset(self, data: SplitData, augment: str, ship_size: int | None = None) -> FERDataset:
        transform = Transform(augment, self.preprocessing, ship_size=ship_size)
        return FERDataset(
            data, transform, self.skip_bad_files, device_transforms=self.device_transforms, with_va=self.has_va
        )

    def _train_and_val(self) -> tuple[SplitData, SplitData]:
        """The training split and the validation split (its own, or held out of training)."""
        train = self._read(self.train_split)
        empty = [name for name, n in train.class_counts().items() if n == 0]
        if empty:
            raise DanError(
                f"{train.source}: class {', '.join(map(repr, empty))} has no training images: a model would learn "
                "a class it never saw (remove the class or add images; 'dan data check' lists every problem)"
            )
        if self.val_split is not None:
            return train, self._read(self.val_split)
        if self.val_fraction <= 0:
            raise DanError(
                f"{self.root}: the {self.format} data set has no validation split: set data.val_fraction above 0 "
                "to hold one out of training, or name one with data.val_split"
            )
        return train.holdout(self.val_fraction, self.seed)

    def setup(self, stage: str | None = None) -> None:
        """Read the splits ``stage`` needs (all for None); raise DanError on any problem."""
        if (stage in (None, "fit") and self.train_dataset is None) or (stage == "validate" and not self.val_dataset):
            train, val = self._train_and_val()
            if stage != "validate":
                self.train_dataset = self._dataset(train, self.augment, self.device_resize)
            self.val_dataset = self._dataset(val, "eval")
        if stage in (None, "test") and self.test_dataset is None:
            same = self.val_dataset is not None and self.test_split == self.val_split
            self.test_dataset = self.val_dataset if same else self._dataset(self._read(self.test_split), "eval")
        if stage == "predict":
            raise DanError("FERDataModule has no predict split; use 'dan predict'")

    @property
    def trained_on(self) -> dict:
        """What a model trained here learns from (for checkpoints; :class:`dan.data.provenance.TrainedOn`):
        the format, whether the faces are generated, the reader options, the splits, the hold-out and a
        digest of the training split (read here, once, if :meth:`setup` has not read it yet; one that
        cannot be read is recorded by name, and :meth:`setup` raises its error)."""
        try:
            train: SplitData | str = self._read(self.train_split)
        except DanError:
            train = self.train_split
        record = TrainedOn.of_training(
            self.data_format,
            self.root,
            self.read_options,
            train,
            self.val_split,
            self.val_fraction,
            self.seed,
            read_manifest(self.root) is not None,
        )
        return record.to_dict()

    @property
    def bad_files(self) -> int:
        """Unreadable images skipped so far over all splits (with ``skip_bad_files``)."""
        sets = {id(d): d for d in (self.train_dataset, self.val_dataset, self.test_dataset) if d is not None}
        return sum(d.bad_files for d in sets.values())

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return trainer.world_size, trainer.global_rank
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def _pin(self) -> bool:
        if self.pin_memory is not None:
            return self.pin_memory and torch.cuda.is_available()
        trainer = self.trainer
        if trainer is not None:
            return trainer.strategy.root_device.type == "cuda"
        return torch.cuda.is_available()

    def resume(self, epoch: int, batches_done: int) -> None:
        """Start the training loader of ``epoch`` after its first ``batches_done`` batches (a resumed run)."""
        self._resume = (int(epoch), int(batches_done))

    def _loader(self, dataset: FERDataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise DanError("FERDataModule.setup() has not been run for this split")
        batch = self.batch_size if train else self.eval_batch_size
        sampler = None
        if train:  # seeded per epoch, sharded over ranks, a seed per sample, resumable mid-epoch
            replicas, rank = self._world()
            sampler = EpochSampler(
                dataset.targets, balanced=self.balanced_sampler, seed=self.seed, num_replicas=replicas, rank=rank
            )
            if self._resume is not None:  # applies to that one epoch, whenever it is iterated
                sampler.resume(self._resume[0], self._resume[1] * batch)
        return (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=batch,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate if self.device_transforms else None,
            pin_memory=self._pin(),
            drop_last=train and len(dataset) > batch,  # no size-1 batch for BatchNorm
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced) training batches (:mod:`dan.data.batch` dicts, or ``(images, labels)``)."""
        return self._loader(self.train_dataset, train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches, in order."""
        return self._loader(self.val_dataset, train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches, in order."""
        return self._loader(self.test_dataset, train=False)
