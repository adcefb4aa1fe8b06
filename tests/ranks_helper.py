"""One rank of the balance test (tests/test_packed_ranks.py): ``python -m tests.ranks_helper ROOT OUT``.

The rank comes from the usual environment variables (``WORLD_SIZE``, ``RANK``, ``NODE_RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); the process joins a gloo group on loopback, builds
the training loader of the packed set at ``ROOT`` with 0, 1 and 2 workers, runs two epochs of each
through it (every item decoded from its chunk), and rank 0 writes every rank's sample indices per
epoch to ``OUT`` as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from dan.data.datamodule import FERDataModule


class Echo(Dataset):
    """Decodes each asked-for packed image (as training does) but returns its index, to count who got what."""

    def __init__(self, inner) -> None:
        self.inner, self.targets = inner, inner.targets

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, _ = key
        assert self.inner.load(index).ndim == 3
        return torch.tensor(index)


def main(root: str, out: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    result = {}
    for workers in (0, 1, 2):
        dm = FERDataModule(
            format="packed", root=root, batch_size=3, num_workers=workers, seed=5, device_transforms=False
        )
        dm.setup("fit")
        assert dm.train_dataset is not None
        dm.train_dataset = Echo(dm.train_dataset)  # type: ignore[assignment]
        loader = dm.train_dataloader()
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]  # what Lightning calls
            seen = [int(i) for batch in loader for i in batch]
            everyone: list = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, seen)
            result[f"{workers}/{epoch}"] = everyone
    dist.barrier()  # nobody is left waiting at the end of an epoch
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump({"result": result, "size": len(dm.train_dataset)}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
