"""What a training run's checkpoint holds, declared once (audiocraft's `register_stateful`).

`TrainState` owns the networks, their optimisers, the generator's weight average (EMA;
None when off), the step counters and every rank's random state: the global torch
generator (phase shuffle, interpolates), the latent generator, the fake-label generator,
the augmentation generator, and the data order (the batch sampler's generator, its
permutation and its position). Its `state_dict` is exactly the checkpoint's `model.pt`,
and `STATE_KEYS` derives from it. Checkpoints from before EMA, fake labels and
augmentation lack those entries: the EMA then starts as the generator, and the two new
streams keep their fresh seeds (runs that never used them continue identically). A run resumed from a checkpoint continues bit-identically to one that
was never interrupted, on the same number of workers: the streams are seeded from
(seed, rank, stream) alone and restored, never re-derived from the resume step. With a
different number of workers the per-rank streams cannot carry over; the resume then
reseeds them from (seed, rank, step) and says that it is statistically equivalent, not
identical.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

STREAM_TORCH, STREAM_DATA, STREAM_Z, STREAM_LABELS, STREAM_AUGMENT = 0, 1, 2, 3, 4


def stream_seed(seed: int, rank: int, stream: int, step: int = 0) -> int:
    """A distinct, reproducible seed per (seed, rank, purpose) [, resume step]."""
    return (seed * 1_000_003 + rank * 7919 + step * 104_729 + stream) % (2**63 - 1)


class Batches:
    """Epoch-wise shuffled batches of this rank's examples, from its own torch.Generator:
    (x, label indices) when `labels` (int64, one per example) are given, else (x, None)."""

    def __init__(self, x: torch.Tensor, batch_size: int, gen: torch.Generator,
                 device: torch.device, labels: torch.Tensor | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.x, self.batch_size, self.gen, self.device = x, batch_size, gen, device
        self.labels, self.memory_format = labels, memory_format
        # Applied to each drawn batch on its device (one-hot pitch: builders.build_batch_encoder);
        # the examples stay in the data's compact layout.
        self.encode: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.perm = torch.randperm(len(x), generator=gen)
        self.pos = 0

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = len(self.x)
        if n < self.batch_size:
            idx = torch.randint(n, (self.batch_size,), generator=self.gen)
        else:
            if self.pos + self.batch_size > n:
                self.perm, self.pos = torch.randperm(n, generator=self.gen), 0
            idx = self.perm[self.pos:self.pos + self.batch_size]
            self.pos += self.batch_size
        labels = None if self.labels is None else self.labels[idx].to(self.device)
        x = self.x[idx].to(self.device, non_blocking=True)
        if self.encode is not None:
            x = self.encode(x)
        return x.contiguous(memory_format=self.memory_format), labels

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["perm"]) != len(self.x):
            raise ValueError(f"the checkpoint's data order covers {len(state['perm'])} "
                             f"examples, this rank has {len(self.x)}")
        self.gen.set_state(state["gen"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


class RankRandom:
    """One rank's random streams: global torch, latents, fake labels, augmentation, data
    order. `real_labels` (class indices of `real_x`) and `label_probs` (the training split's
    class frequencies, which fake labels follow) are given for conditional training."""

    def __init__(self, seed: int, rank: int, real_x: torch.Tensor, batch_size: int,
                 device: torch.device, latent_dim: int, real_labels: torch.Tensor | None = None,
                 label_probs: Sequence[float] | None = None) -> None:
        self.seed, self.rank, self.latent_dim, self.device = seed, rank, latent_dim, device
        self.batch_size = batch_size
        torch.manual_seed(stream_seed(seed, rank, STREAM_TORCH))
        self.z_gen = torch.Generator().manual_seed(stream_seed(seed, rank, STREAM_Z))
        self.label_gen = torch.Generator().manual_seed(stream_seed(seed, rank, STREAM_LABELS))
        self.augment_gen = torch.Generator().manual_seed(stream_seed(seed, rank, STREAM_AUGMENT))
        self.label_probs = None if label_probs is None else \
            torch.tensor(list(label_probs), dtype=torch.float64)
        self.batches = Batches(real_x, batch_size,
                               torch.Generator().manual_seed(stream_seed(seed, rank, STREAM_DATA)),
                               device, labels=real_labels)

    def next_z(self) -> torch.Tensor:
        z = torch.rand(self.batch_size, self.latent_dim, generator=self.z_gen) * 2 - 1
        return z.to(self.device)

    def next_labels(self) -> torch.Tensor:
        """Class indices for the next batch of fakes, drawn from the training frequencies."""
        if self.label_probs is None:
            raise RuntimeError("next_labels on an unconditional run")
        y = torch.multinomial(self.label_probs, self.batch_size, replacement=True,
                              generator=self.label_gen)
        return y.to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(), "z": self.z_gen.get_state(),
                "labels": self.label_gen.get_state(), "augment": self.augment_gen.get_state(),
                "data": self.batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        self.z_gen.set_state(state["z"])
        for key, gen in (("labels", self.label_gen), ("augment", self.augment_gen)):
            if key in state:  # absent in checkpoints from before these streams existed
                gen.set_state(state[key])
        self.batches.load_state_dict(state["data"])

    def reseed(self, step: int) -> None:
        """Fresh streams for a resume whose saved streams do not fit (another world size)."""
        torch.manual_seed(stream_seed(self.seed, self.rank, STREAM_TORCH, step))
        self.z_gen.manual_seed(stream_seed(self.seed, self.rank, STREAM_Z, step))
        self.label_gen.manual_seed(stream_seed(self.seed, self.rank, STREAM_LABELS, step))
        self.augment_gen.manual_seed(stream_seed(self.seed, self.rank, STREAM_AUGMENT, step))
        self.batches.gen.manual_seed(stream_seed(self.seed, self.rank, STREAM_DATA, step))
        self.batches.perm = torch.randperm(len(self.batches.x), generator=self.batches.gen)
        self.batches.pos = 0


class TrainState:
    """The networks, optimisers, counters and per-rank random state of one run."""

    KEYS = ("generator", "critic", "opt_generator", "opt_critic", "step", "critic_steps",
            "rng", "ema", "scalers", "train_seconds")
    # A checkpoint without these still samples; resuming it reseeds the random streams
    # (with a warning), starts the EMA from the generator and fp16's loss scales afresh,
    # and counts training time from 0.
    OPTIONAL = ("rng", "ema", "scalers", "train_seconds")

    def __init__(self, generator: nn.Module, critic: nn.Module,
                 opt_generator: torch.optim.Optimizer, opt_critic: torch.optim.Optimizer,
                 random: RankRandom, ema: nn.Module | None = None,
                 scalers: tuple[Any, Any] = (None, None)) -> None:
        self.generator, self.critic = generator, critic
        self.opt_generator, self.opt_critic = opt_generator, opt_critic
        self.random, self.ema, self.scalers = random, ema, scalers
        self.step = 0
        self.critic_steps = 0
        self.train_seconds = 0.0  # training wall time, evaluation excluded, every attempt

    def state_dict(self, rng_by_rank: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint payload; `rng_by_rank` is every rank's `RankRandom.state_dict()`
        (gathered to rank 0, which writes). `ema` is None when EMA is off."""
        return {"generator": self.generator.state_dict(), "critic": self.critic.state_dict(),
                "opt_generator": self.opt_generator.state_dict(),
                "opt_critic": self.opt_critic.state_dict(), "step": self.step,
                "critic_steps": self.critic_steps, "rng": list(rng_by_rank),
                "ema": None if self.ema is None else self.ema.state_dict(),
                "scalers": [None if s is None else s.state_dict() for s in self.scalers],
                "train_seconds": self.train_seconds}

    def load_state_dict(self, state: dict[str, Any], rank: int, world_size: int) -> None:
        """Restore everything; `load_state_into` errors come from the caller's check."""
        self.generator.load_state_dict(state["generator"])
        if self.ema is not None:
            self.ema.load_state_dict(state.get("ema") or state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.opt_generator.load_state_dict(state["opt_generator"])
        self.opt_critic.load_state_dict(state["opt_critic"])
        self.step, self.critic_steps = int(state["step"]), int(state["critic_steps"])
        self.train_seconds = float(state.get("train_seconds") or 0.0)
        for scaler, saved in zip(self.scalers, state.get("scalers") or (None, None)):
            if scaler is not None and saved:
                scaler.load_state_dict(saved)
        rng = state.get("rng")
        if isinstance(rng, list) and rng and len(rng) == world_size:
            try:
                self.random.load_state_dict(rng[rank])
                return
            except (ValueError, KeyError, RuntimeError) as exc:
                reason = str(exc)
        else:
            saved = len(rng) if isinstance(rng, list) else 0
            reason = f"saved by {saved} worker(s), resumed on {world_size}"
        if rank == 0:
            log.warning("random state not restored (%s): the resumed run is statistically "
                        "equivalent to an uninterrupted one, not identical", reason)
        self.random.reseed(self.step)
