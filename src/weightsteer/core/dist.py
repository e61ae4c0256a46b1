"""Several processes on one job (``accelerate launch`` or ``torchrun``): who writes, who waits.

The launcher sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; without them there is one process
and every function here is free (no process group, no barrier). With them:

* every file is written by rank 0 (``is_main``), or by each rank for its own shard, merged
  by rank 0 (persona-data chunks);
* a decision that depends on files (reuse a unit or make it) is rank 0's, sent to all
  (``broadcast``), so every rank takes the same branch and reaches the same collectives;
* ranks wait for rank 0's writes at a ``barrier`` before they read them.

The process group is the one HF ``Trainer`` uses (accelerate's ``PartialState``: NCCL on
GPUs, gloo on CPUs), started on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from weightsteer.core.errors import UserError

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the process that writes (rank 0; the only one without a launcher)."""
    return rank() == 0


def _group():
    """The started process group (``torch.distributed``), or None for one process."""
    if world_size() == 1:
        return None
    import torch
    import torch.distributed as td

    if not td.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())  # what Trainer's arguments start
    return td


def barrier() -> None:
    """Wait until every process is here."""
    td = _group()
    if td is not None:
        td.barrier()


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (picklable)."""
    td = _group()
    if td is None:
        return value
    box = [value]
    td.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds a cached model); the others run it after,
    when what it wrote is there."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def shard(n: int) -> range:
    """The indices ``0..n-1`` this rank works on: every ``world_size()``-th from its rank."""
    return range(rank(), n, world_size())


def check_device_map(device_map: str) -> None:
    """``device_map`` spreads one model over the devices; several processes each hold a
    whole copy (data parallel). Both at once is refused."""
    if device_map != "none" and world_size() > 1:
        raise UserError(
            f"device_map {device_map!r} spreads one model over all devices, but this job "
            f"runs {world_size()} processes that each hold a copy; launch one process for "
            "device_map, or drop device_map for data-parallel processes"
        )


def check_unsharded() -> None:
    """Training keeps each adapter whole on every process (data parallel), and rank 0 saves
    it; FSDP and DeepSpeed ZeRO-3 (set by an accelerate config) would shard it, so rank 0
    would save a slice. Refused, with what works."""
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    zero3 = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" and (
        os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    )
    if fsdp or zero3:
        raise UserError(
            f"this accelerate config shards parameters ({'FSDP' if fsdp else 'ZeRO-3'}); "
            "weightsteer trains adapters data parallel, each process holding the whole "
            "model: launch with a multi-GPU config without FSDP/ZeRO-3, or with "
            "device_map for a model larger than one GPU"
        )
