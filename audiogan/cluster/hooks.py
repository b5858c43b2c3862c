"""Fault injection for tests: an object passed into the training loop, like its `Session`.

Production runs pass `FaultHooks()` (every hook off) and no production module reads an
environment variable for hooks. Tests that drive the loop in-process pass an instance.
Tests that start a real `audiogan` process (the CLI, `ray job submit`, a runtime_env) have
one channel, read at one entry point (`audiogan.cli.main`, which builds the object and
hands it to the command):

    AUDIOGAN_FAULT_HOOKS='{"nan_at_step": 8}' audiogan train ...

The object crosses process boundaries (Train workers, Tune trials) as a plain dict.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Mapping

from audiogan.errors import UserError

log = logging.getLogger(__name__)

ENV_VAR = "AUDIOGAN_FAULT_HOOKS"


@dataclasses.dataclass(frozen=True)
class FaultHooks:
    nan_at_step: int = 0             # rank 0 reports a NaN critic loss at this step
    exit_at_step: int = 0            # the last rank dies hard (os._exit) at this step ...
    exit_marker: str = ""            # ... once: the marker file says it already did
    exit_delay_s: float = 5.0        # lets Train commit the last checkpoint first
    param_dump_dir: str = ""         # each rank saves its parameters here at the end
    report_log: str = ""             # rank 0 appends every report as a JSON line
    step_sleep_s: float = 0.0        # a floor on step time, so a kill lands mid-run ...
    step_sleep_marker: str = ""      # ... only while this file exists (empty: always)
    ckpt_write_fail_step: int = 0    # checkpoint write at this step fails half-written

    @property
    def active(self) -> bool:
        return self != FaultHooks()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "FaultHooks":
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(d or {}) - set(known))
        if unknown:
            raise UserError(f"{ENV_VAR}: unknown hook '{unknown[0]}' "
                            f"(known: {', '.join(sorted(known))})")
        return cls(**dict(d or {}))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "FaultHooks":
        text = (environ if environ is not None else os.environ).get(ENV_VAR, "")
        if not text:
            return cls()
        try:
            hooks = cls.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{ENV_VAR} must be a JSON object of hooks: {exc}") from exc
        log.warning("fault hooks active (%s): %s", ENV_VAR, hooks)
        return hooks

    # -- the hooks, called by the loop and the checkpoint writer ---------------------------
    def after_step(self, step: int, rank: int, world: int) -> None:
        if self.step_sleep_s and (not self.step_sleep_marker
                                  or os.path.exists(self.step_sleep_marker)):
            time.sleep(self.step_sleep_s)
        if self.exit_at_step != step or rank != world - 1:
            return
        if self.exit_marker and os.path.exists(self.exit_marker):
            return
        if self.exit_marker:
            with open(self.exit_marker, "w") as f:
                f.write(str(step))
        # Ray Train's controller collects one queued report per health-check poll (2 s): give
        # it time to commit the last checkpoint, as a real crash long after a checkpoint would.
        time.sleep(self.exit_delay_s)
        log.warning("fault hook: worker rank %d exits at step %d", rank, step)
        os._exit(1)

    def corrupt_losses(self, losses: dict[str, float], step: int, rank: int) -> None:
        if self.nan_at_step == step and rank == 0:
            losses["loss/critic"] = float("nan")

    def log_report(self, metrics: Mapping[str, Any], rank: int) -> None:
        if self.report_log and rank == 0:
            with open(self.report_log, "a") as f:
                f.write(json.dumps(dict(metrics)) + "\n")

    def during_checkpoint_write(self, model_path: str, step: int) -> None:
        """At `ckpt_write_fail_step`, cut the half-written model.pt in two and fail as a
        full disk would."""
        if not self.ckpt_write_fail_step or self.ckpt_write_fail_step != step:
            return
        with open(model_path, "r+b") as f:
            f.truncate(os.path.getsize(model_path) // 2)
        raise OSError(28, f"No space left on device (injected while writing step {step})")

    def dump_params(self, rank: int, *modules: Any) -> None:
        """This rank's parameters, to compare replicas after a DDP run."""
        if not self.param_dump_dir:
            return
        import torch

        os.makedirs(self.param_dump_dir, exist_ok=True)
        state = {f"{i}.{k}": v.detach().cpu() for i, m in enumerate(modules)
                 for k, v in m.state_dict().items()}
        torch.save(state, os.path.join(self.param_dump_dir, f"rank{rank}.pt"))
