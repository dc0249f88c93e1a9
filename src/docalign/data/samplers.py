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

Length grouping (``group_by_length = k``, off by default): each pass's shuffled order is cut into chunks of ``k``
batches, each chunk is sorted by window length (longest first) and cut into batches, and those batches are shuffled
within the chunk. A batch is padded to its longest window (``collate_windows``), so batches of similar lengths pad
less: on the demo's receipts (median 141 tokens, up to 256) chunks of 8 batches of 8 cut the padded tokens per epoch
by 19% and the attention's L^2 work by 31% (measured in docs/RESULTS.md, "make train: where the time goes"). The
order is still a function of the pass's seed alone, so resuming stays exact.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence, Sized

import torch
from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Shuffled indices of one process's share; ``resume_at`` makes the next epoch's pass replay a recorded order.

    Args:
        dataset: the samples (only its length is used, and ``lengths`` when grouping).
        num_replicas, rank: the processes and this one's rank (1 and 0 without DDP).
        seed: the DDP shuffle seed (Lightning's ``PL_GLOBAL_SEED``); one process draws from the global generator.
        group_by_length: 0 (default) for plain shuffling; ``k > 0`` groups windows of similar length into batches
            within chunks of ``k`` batches (see the module's docstring); needs ``lengths`` and ``batch_size``.
        lengths: each sample's length (tokens), for grouping; batch_size: this process's batch size.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        group_by_length: int = 0,
        lengths: Optional[Sequence[int]] = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        if group_by_length < 0:
            raise ValueError(f"data.group_by_length must be 0 (off) or a number of batches, got {group_by_length}")
        if group_by_length and (lengths is None or len(lengths) != len(dataset)):
            raise ValueError("group_by_length needs one length per sample")
        self.group_by_length, self.lengths, self.batch_size = group_by_length, lengths, max(1, batch_size)
        self.order_seed: Optional[int] = None  # the seed of the current pass's permutation (one process)
        self._resume: Optional[dict[str, Any]] = None

    def _grouped(self, indices: list[int], seed: int) -> list[int]:
        """``indices`` regrouped: sorted by length within chunks of ``group_by_length`` batches, batches shuffled."""
        generator = torch.Generator()
        generator.manual_seed(seed + 1)  # the batches' order within a chunk: a stream of its own
        size = self.batch_size
        out: list[int] = []
        for start in range(0, len(indices), size * self.group_by_length):
            chunk = sorted(indices[start : start + size * self.group_by_length], key=lambda i: -self.lengths[i])
            batches = [chunk[b : b + size] for b in range(0, len(chunk), size)]
            # a short batch (the pass's last) stays last: the loader cuts the order into consecutive batches
            tail = batches.pop() if len(batches[-1]) < size else []
            for b in torch.randperm(len(batches), generator=generator).tolist():
                out.extend(batches[b])
            out.extend(tail)
        return out

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
            seed = self.seed + self.epoch
        if self.group_by_length:
            indices = self._grouped(indices, seed)
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
