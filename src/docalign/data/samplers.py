"""A training loader that resumes mid-epoch exactly where a checkpoint left it.

Lightning 2.x saves a train DataLoader's ``state_dict()`` into the checkpoint (``loops.fit_loop.state_dict.
combined_loader``) and calls its ``load_state_dict`` before iterating again; it restores the loops' progress, so a
run resumed mid-epoch runs only the epoch's remaining batches, but a plain DataLoader would draw them from a fresh
shuffle, from its start. ``ResumableLoader`` records the epoch, the seed of that epoch's shuffling order and the
number of batches it has yielded; after ``load_state_dict`` its ``ResumableSampler`` replays that order from the first
sample not yet consumed. (Lightning does not prefetch from a loader whose length is known, so the batches yielded
are the batches trained on when the checkpoint is written.)

The order is the one the stock samplers give, so runs are unchanged: with one process, ``torch.randperm`` with a
generator seeded from the global torch generator at the start of each epoch, as ``RandomSampler`` does; with N
processes, ``DistributedSampler``'s (seeded with ``seed + epoch``; being one, it is kept by Lightning, not replaced).
The generators' own states are restored by the system (``docalign.resume``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sized

import torch
from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Shuffled indices of one process's share; ``resume_at`` makes the next epoch's pass replay a recorded order.

    Args:
        dataset: the samples (only its length is used).
        num_replicas, rank: the processes and this one's rank (1 and 0 without DDP).
        seed: the DDP shuffle seed (Lightning's ``PL_GLOBAL_SEED``); one process draws from the global generator.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.order_seed: Optional[int] = None  # the seed of the current pass's permutation (one process)
        self._resume: Optional[dict[str, Any]] = None

    def resume_at(self, order_seed: Optional[int], start: int) -> None:
        """Make the next pass use the permutation of ``order_seed`` (one process) and skip its first ``start``
        indices."""
        self._resume = {"order_seed": order_seed, "start": start}

    def __iter__(self) -> Iterator[int]:
        resume, self._resume = self._resume, None
        if self.num_replicas == 1:
            seed = resume["order_seed"] if resume and resume["order_seed"] is not None else None
            if seed is None:  # exactly as RandomSampler draws it
                seed = int(torch.empty((), dtype=torch.int64).random_().item())
            self.order_seed = seed
            generator = torch.Generator()
            generator.manual_seed(seed)
            indices = torch.randperm(len(self.dataset), generator=generator).tolist()
        else:
            indices = list(super().__iter__())
        return iter(indices[resume["start"] :] if resume else indices)


class ResumableLoader(DataLoader):
    """A DataLoader over a ``ResumableSampler`` with ``state_dict``/``load_state_dict`` for Lightning.

    Args:
        epoch_batches: the number of batches an epoch trains on (``trainer.num_training_batches``, which
            ``limit_train_batches`` may cut): a state saved after the epoch's last batch resumes the next epoch.
        The rest: DataLoader's, with ``sampler`` a ``ResumableSampler``.
    """

    def __init__(self, *args: Any, epoch_batches: Optional[Callable[[], float]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lightning may rebuild the loader with a sampler of its own (``overfit_batches``): then it is a plain one
        self.resumable = isinstance(self.sampler, ResumableSampler)
        self.epoch_batches = epoch_batches
        self.batches = 0  # yielded in the current pass (from the start of the epoch)
        self._pending: Optional[dict[str, Any]] = None

    def __iter__(self) -> Iterator[Any]:
        pending, self._pending = self._pending, None
        if self.resumable and pending is not None and pending["epoch"] == self.sampler.epoch and pending["batches"] > 0:
            self.sampler.resume_at(pending["order_seed"], pending["batches"] * self.batch_size)
            self.batches = pending["batches"]
            # A DataLoader iterator draws its workers' base seed from the global generator when it is made; the
            # interrupted run made its iterator at the epoch's start, before the state now restored, so this one
            # must not draw again (with workers, their seeds then differ from the interrupted run's).
            state = torch.get_rng_state()
            iterator = super().__iter__()
            torch.set_rng_state(state)
        else:
            self.batches = 0
            iterator = super().__iter__()
        for batch in iterator:
            self.batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "order_seed", "batches"}``: where the next batch comes from (``{}`` when not resumable)."""
        if not self.resumable:
            return {}
        epoch, seed, batches = self.sampler.epoch, self.sampler.order_seed, self.batches
        if self.epoch_batches is not None and batches >= self.epoch_batches():
            epoch, seed, batches = epoch + 1, None, 0  # the epoch is done: the next one starts afresh
        return {"epoch": epoch, "order_seed": seed, "batches": batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.resumable or not state:
            return
        self.sampler.set_epoch(int(state["epoch"]))
        self._pending = {
            "epoch": int(state["epoch"]),
            "order_seed": state.get("order_seed"),
            "batches": int(state.get("batches", 0)),
        }
