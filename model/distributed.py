"""Data-parallel training under PyTorch's own engine (docs/training.md): ``torchrun`` + DDP.

``torchrun --nproc-per-node N -m model.train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment;
``DistContext.from_environment`` reads them and joins the process group (gloo on the CPU, NCCL on
CUDA). Without those variables (a plain ``python -m model.train``) nothing is initialized and the
context is rank 0 of 1.

Random streams (stochastic rounding, docs/training.md):

- **rank stream** -- torch's global generator, which activations and errors (tensors of this
  rank's batch shard) draw from. Rank 0 keeps the stream that ``torch.manual_seed(seed)`` started
  (it also initialized the weights), so rank 0 of a 1-process ``torchrun`` is the plain run to the
  bit. Rank r > 0 is reseeded with ``rank_seed(seed, r)``, an independent stream.
- **replicated stream** -- one extra generator per process, seeded with ``replicated_seed(seed)``
  on every rank, which weights (forward W and backward-data W) draw from. Every rank makes the same
  draws in the same order (same model, same step), so replicated tensors are quantized to the same
  bits on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DistContext", "ENV_KEYS", "launched_by_torchrun", "rank_seed", "replicated_seed",
           "replicated_generator", "seed_rank_stream"]

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_REPLICATED_TAG = 0x57454947  # "WEIG": keeps the replicated stream apart from every rank stream


def launched_by_torchrun() -> bool:
    """True when the process environment names a rank and a world size (torchrun sets both)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise ValueError(f"environment variable {name} is not set (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK)")
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer") from None


def _seed_words(seed: int) -> tuple[int, int]:
    """A seed of any sign as two non-negative words (what ``numpy.random.SeedSequence`` takes)."""
    seed %= 1 << 64
    return seed & 0xFFFFFFFF, seed >> 32


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s own stream (rank 0 keeps ``seed``'s stream and never uses this)."""
    if rank < 1:
        raise ValueError(f"rank_seed is for ranks >= 1 (rank 0 keeps the seed's stream), got {rank}")
    state = np.random.SeedSequence((*_seed_words(seed), rank)).generate_state(2, np.uint32)
    return (int(state[1]) << 31) | (int(state[0]) >> 1)  # 63 bits: fits torch.manual_seed everywhere


def replicated_seed(seed: int) -> int:
    """Seed of the replicated stream, the same on every rank."""
    state = np.random.SeedSequence((*_seed_words(seed), _REPLICATED_TAG)).generate_state(2, np.uint32)
    return (int(state[1]) << 31) | (int(state[0]) >> 1)


def seed_rank_stream(seed: int, rank: int) -> None:
    """Give rank ``rank`` its stream in torch's global generators (call after building the model)."""
    if rank > 0:
        torch.manual_seed(rank_seed(seed, rank))


def replicated_generator(seed: int, device: torch.device) -> torch.Generator:
    """The generator replicated tensors (weights) draw their stochastic-rounding bits from."""
    return torch.Generator(device=device).manual_seed(replicated_seed(seed))


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank ``rank`` of ``world_size`` (``backend`` None: plain run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # this context started the process group (and ``close`` ends it)

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world size must be >= 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size - 1}], got {self.rank}")
        if self.local_rank < 0:
            raise ValueError(f"local rank must be >= 0, got {self.local_rank}")

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints progress and writes result.json, checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @staticmethod
    def environment() -> tuple[int, int, int]:
        """(rank, world size, local rank) from torchrun's variables, validated."""
        rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
        local = _env_int("LOCAL_RANK", rank)
        DistContext(rank, world, local)  # validates
        return rank, world, local

    @classmethod
    def from_environment(cls, device_type: str) -> DistContext:
        """Join torchrun's process group (gloo for CPU, NCCL for CUDA); a plain run gets rank 0 of 1."""
        if not launched_by_torchrun():
            return cls()
        import torch.distributed as dist

        rank, world, local = cls.environment()
        backend = "nccl" if device_type == "cuda" else "gloo"
        if not dist.is_available():
            raise RuntimeError("this torch build has no torch.distributed")
        if backend == "nccl" and not dist.is_nccl_available():
            raise RuntimeError("CUDA training under torchrun needs NCCL, which this torch build lacks")
        if dist.is_initialized():  # a caller's group (e.g. a script running several trainings)
            if (dist.get_rank(), dist.get_world_size()) != (rank, world):
                raise RuntimeError(f"the initialized process group is rank {dist.get_rank()} of "
                                   f"{dist.get_world_size()}, the environment says {rank} of {world}")
            return cls(rank, world, local, dist.get_backend())
        dist.init_process_group(backend, rank=rank, world_size=world)
        return cls(rank, world, local, backend, owns_group=True)

    def close(self) -> None:
        """End the process group if this context started it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    # -- collectives (identities in a plain run) --------------------------------------------
    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.distributed:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return t.cpu().tolist()

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for buffer in module.buffers():
            dist.broadcast(buffer.data, 0)

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
