"""The samples on the sweep page: for every trial worth hearing, a few seeds as short clips.

Trials worth hearing are the answer (`best`), the paper's-recipe baseline, and every trial
the final stage evaluated (top-k and baseline, at the checkpoint it scored). A trial with
several roles is sampled once. Each is sampled as `audiogan sample` does (same seeds, same
files: a spectrogram grid and a wav per seed, or per seed a piano roll, MIDI and wav), with
each wav cut to its first `CLIP_S` seconds so the page stays small.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from audiogan.errors import UserError

CLIP_S = 6.0


@dataclasses.dataclass
class Entry:
    trial_id: str
    roles: list[str]
    checkpoint: str | None           # local path or URI; None: the trial kept none
    params: dict[str, Any]
    folder: str = ""                 # under the page's media/ folder
    files: list[str] = dataclasses.field(default_factory=list)  # relative to `folder`
    kind: str = ""                   # "notes" | "spectrogram"
    backend: str = ""
    note: str = ""                   # why there are no samples


def entries(info: dict[str, Any], trials: Sequence[Any], best_checkpoint: str) -> list[Entry]:
    """Best first, then the baseline, then the final stage's other trials (from best.json's
    record `info` and the trial summaries)."""
    by_id = {t.trial_id: t for t in trials}
    out: dict[str, Entry] = {}

    def add(trial_id: str, role: str, checkpoint: str | None) -> None:
        if trial_id in out:
            if role not in out[trial_id].roles:
                out[trial_id].roles.append(role)
            return
        trial = by_id.get(trial_id)
        out[trial_id] = Entry(trial_id, [role], checkpoint,
                              dict(trial.params) if trial is not None else {})

    add(info["trial_id"], "best", best_checkpoint)
    base = info.get("baseline") or {}
    if base.get("trial_id"):
        trial = by_id.get(base["trial_id"])
        add(base["trial_id"], "baseline", trial.checkpoint if trial is not None else None)
    for record in (info.get("final") or {}).get("evaluations", []):
        for role in record.get("roles", []):
            add(record["trial_id"], f"final {role}", record.get("checkpoint"))
    return list(out.values())


def write_media(items: list[Entry], media_dir: str, seeds: Sequence[int]) -> None:
    """Sample every entry's checkpoint into media_dir/<trial>/ (fills folder/files/kind)."""
    for e in items:
        e.folder = f"trial_{e.trial_id}"
        if not seeds:
            e.note = "no samples asked for (--page-seeds 0)"
            continue
        if not e.checkpoint:
            e.note = "this trial kept no checkpoint"
            continue
        try:
            e.files, e.kind, e.backend = _sample(e.checkpoint, os.path.join(media_dir, e.folder),
                                                 seeds)
        except (UserError, OSError, RuntimeError, ValueError, KeyError) as exc:
            # one unreadable checkpoint (missing, corrupt, other version) spoils no page
            e.note = f"could not sample {e.checkpoint}: {type(exc).__name__}: {exc}"[:300]


def _sample(checkpoint: str, out: str, seeds: Sequence[int]) -> tuple[list[str], str, str]:
    import torch

    from audiogan.latent import labels_for_seeds, latents_for_seeds
    from audiogan.sample import generate, slug, write_samples
    from audiogan.train.checkpoint import label_map_of, load_generator

    generator, cfg, meta = load_generator(checkpoint)
    z = latents_for_seeds(list(seeds), cfg.model.latent_dim)
    label_map = label_map_of(meta)
    y, names = None, [f"seed_{s:04d}" for s in seeds]
    if label_map is not None:  # each seed's evaluation label, as `audiogan sample` gives it
        y = labels_for_seeds(list(seeds), label_map.probs).to(torch.long)
        names = [f"{n}_{slug(label_map.names[int(c)])}" for n, c in zip(names, y)]
    x = generate(generator, z, y)
    files, backend = write_samples(x, names, meta, out,
                                   griffin_lim_iters=cfg.data.griffin_lim_iters,
                                   griffin_lim_momentum=cfg.data.griffin_lim_momentum,
                                   clip_s=CLIP_S)
    return files, meta["kind"], backend
