"""`audiogan invert CHECKPOINT (--audio FILES... | --midi FILES...) --out DIR [--steps N]
[--restarts R] [--label L] [--data DIR]`: latents of real recordings (GAN inversion).

Each input goes through the dataset's own preprocessing: audio as `audiogan.data.audio`
does it (16 kHz, mono, the loudest 16384-sample window or zero-padded to it; silent, too
short, unparseable... files are rejected) then the checkpoint's spectrogram; MIDI as
`audiogan.data.perfile` does it for validation and test (the notes of all tracks, windows
of `data.window` notes without overlap, each window one item). A bad file is a reject:
listed in `inversion.json` and one line on stderr, never a traceback.

`audiogan.inversion` finds z (distance, optimiser, restarts). Conditional models invert
under one class: `--label`, else the digit classifier's prediction (SpectoGAN: the
checkpoint's `metrics.classifier`, else `classifier/` in `--data`, in the complex run's
`metrics.reference_data`, or in the data the checkpoint was trained on), else every class
is tried and the best kept.

Writes to DIR, per item NAME (the file's stem; `_wNNN` per MIDI window): `NAME.z.npy`
([latent_dim] float32: `audiogan sample --latents`), the reconstruction (SpectoGAN:
`NAME.wav` and `NAME.png`, real beside reconstructed log magnitudes; PianoGAN: `NAME.mid`,
`.wav`, piano-roll `.png`), and `inversion.json` (distances, random-z reference, labels,
rejects).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from audiogan import inversion, storage
from audiogan.data import audio as audio_io
from audiogan.data import complex_spec, perfile, shards, spectro
from audiogan.errors import UserError

log = logging.getLogger(__name__)


def _unique(stem: str, taken: set[str]) -> str:
    name, k = stem, 1
    while name in taken:
        name, k = f"{stem}_{k}", k + 1
    taken.add(name)
    return name


def read_items(paths: list[str], meta: dict[str, Any], cfg: Any
               ) -> tuple[list[dict[str, Any]], np.ndarray, list[dict[str, str]]]:
    """(items, raw examples, rejects): spectrograms as raw log magnitudes [N, 128, 128],
    notes as raw windows [N, window, 3]."""
    items, raws, rejects, taken = [], [], [], set()
    for path in paths:
        try:
            data = audio_io.read_source(path)
            if meta["kind"] == "notes":
                windows = perfile.midi_windows(data, cfg.data.window, cfg.data.apply_pedal)
            else:
                clip, _ = audio_io.clip_from_wav(data)
                windows = spectro.log_magnitude(clip)[None]  # float32, as the dataset
        except audio_io.Rejected as rej:
            rejects.append({"path": path, "reason": rej.reason, "detail": rej.detail})
            print(f"audiogan invert: rejected {path}: {rej}", file=sys.stderr)
            continue
        stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0] or "input"
        for i, x in enumerate(windows):
            name = _unique(stem if meta["kind"] != "notes" else f"{stem}_w{i:03d}", taken)
            items.append({"name": name, "source": path, **({"window": i}
                                                          if meta["kind"] == "notes" else {})})
            raws.append(np.asarray(x, np.float32))
    return items, np.stack(raws) if raws else np.zeros((0,)), rejects


def find_classifier_dir(cfg: Any, meta: dict[str, Any], data: str | None) -> str | None:
    """The digit classifier for a conditional SpectoGAN's labels (module docstring)."""
    from audiogan.metrics.evaluator import find_classifier

    if cfg.metrics.classifier:
        return find_classifier(cfg.metrics.classifier, "")
    for where in (data, cfg.metrics.reference_data, meta.get("data")):
        if where and not storage.is_uri(where) and os.path.isdir(where):
            found = find_classifier("", where)
            if found:
                return found
    return None


def choose_labels(label_map: Any, asked: str | None, targets: torch.Tensor,
                  classifier_dir: str | None) -> tuple[torch.Tensor | None, str]:
    """(class index per item or None = try every class, how they were chosen)."""
    if asked is not None:
        classes = label_map.parse(asked)
        if len(classes) != 1:
            raise UserError("--label takes one class")
        return torch.full((len(targets),), classes[0], dtype=torch.long), "given"
    if classifier_dir is None:
        return None, "best of every class"
    from audiogan.classifier import load_classifier
    from audiogan.metrics.inception import class_probabilities

    model, info = load_classifier(classifier_dir)
    names = np.asarray(info["labels"], dtype=object)[
        class_probabilities(model, targets).argmax(1).numpy()]
    if not all(n in label_map.names for n in names):
        return None, "best of every class"
    return (torch.tensor([label_map.names.index(n) for n in names], dtype=torch.long),
            f"classifier ({classifier_dir})")


def run_inversion(generator: torch.nn.Module, targets: torch.Tensor, space: inversion.Space,
                  labels: torch.Tensor | None, n_classes: int, **kw: Any
                  ) -> tuple[inversion.Result, torch.Tensor | None]:
    """`inversion.invert`, under each class in turn when `labels` is None for a
    conditional generator (the best class per item kept)."""
    if not n_classes or labels is not None:
        return inversion.invert(generator, targets, space, labels=labels, **kw), labels
    best: inversion.Result | None = None
    chosen = torch.zeros(len(targets), dtype=torch.long)
    for k in range(n_classes):
        log.info("invert: class %d of %d", k + 1, n_classes)
        y = torch.full((len(targets),), k, dtype=torch.long)
        r = inversion.invert(generator, targets, space, labels=y, **kw)
        if best is None:
            best = r
            continue
        win = torch.from_numpy(r.distance < best.distance)
        best.z[win] = r.z[win]
        best.distance = np.where(win.numpy(), r.distance, best.distance)
        best.random_z = np.minimum(best.random_z, r.random_z)
        chosen[win] = k
    return best, chosen


def _png(real: np.ndarray, recon: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    for ax, img, label in zip(axes, (real, recon), ("real", "reconstruction")):
        ax.imshow(img.T, origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def write_outputs(out: str, items: list[dict[str, Any]], result: inversion.Result,
                  x: np.ndarray, targets: torch.Tensor, space: inversion.Space,
                  meta: dict[str, Any], cfg: Any) -> None:
    """z, reconstruction files and each item's `files` list."""
    from audiogan.sample import spectrogram_audio, wav_bytes, write_samples

    names = [it["name"] for it in items]
    for it, z in zip(items, result.z.numpy().astype(np.float32)):
        buf = io.BytesIO()
        np.save(buf, z)
        storage.write_bytes_atomic(storage.join(out, it["name"] + ".z.npy"), buf.getvalue())
        it["files"] = [it["name"] + ".z.npy"]
    if meta["kind"] == "notes":
        files, _ = write_samples(x, names, meta, out, griffin_lim_iters=1)
        for it in items:
            it["files"] += [f for f in files if os.path.splitext(f)[0] == it["name"]]
        return
    audio, _, _ = spectrogram_audio(shards.from_network(x, meta), meta,
                                    griffin_lim_iters=cfg.data.griffin_lim_iters,
                                    griffin_lim_momentum=cfg.data.griffin_lim_momentum)
    projected = space.project(torch.from_numpy(x)).numpy()[:, 0]
    for i, it in enumerate(items):
        storage.write_bytes_atomic(storage.join(out, it["name"] + ".wav"),
                                   wav_bytes(audio[i], audio_io.SAMPLE_RATE))
        storage.write_bytes_atomic(storage.join(out, it["name"] + ".png"), _png(
            targets[i, 0].numpy(), projected[i], f"{it['name']}: distance {it['distance']:.4f}"))
        it["files"] += [it["name"] + ".wav", it["name"] + ".png"]


def cli_main(args: argparse.Namespace) -> int:
    from audiogan.sample import generate
    from audiogan.train.checkpoint import label_map_of, latest_in, load_generator

    start = time.perf_counter()
    checkpoint = latest_in(args.checkpoint)
    generator, cfg, meta = load_generator(checkpoint)
    want = "--midi" if meta["kind"] == "notes" else "--audio"
    paths = args.midi if meta["kind"] == "notes" else args.audio
    other = args.audio if meta["kind"] == "notes" else args.midi
    if other or not paths:
        raise UserError(f"this {cfg.model.family} checkpoint inverts {want} files")
    if args.steps < 1 or args.restarts < 1:
        raise UserError("--steps and --restarts must be >= 1")
    label_map = label_map_of(meta)
    if args.label is not None and label_map is None:
        raise UserError("--label: this checkpoint's model is unconditional (no classes)")
    items, raw, rejects = read_items(paths, meta, cfg)
    record: dict[str, Any] = {
        "checkpoint": checkpoint, "family": cfg.model.family, "step": meta.get("step"),
        "representation": complex_spec.representation(meta) if meta["kind"] != "notes" else "",
        "steps": args.steps, "restarts": args.restarts, "seed": args.seed,
        "rejects": rejects, "items": items}
    if items:
        log.info("invert: %d item(s) from %d file(s) (%d rejected), %d steps x %d restarts",
                 len(items), len(paths), len(rejects), args.steps, args.restarts)
        space = inversion.Space(meta)
        targets = (inversion.note_targets(raw, meta) if meta["kind"] == "notes"
                   else inversion.spectrogram_targets(raw, meta))
        labels, how = None, ""
        if label_map is not None:
            clf = None if meta["kind"] == "notes" or args.label is not None else \
                find_classifier_dir(cfg, meta, args.data)
            labels, how = choose_labels(label_map, args.label, targets, clf)
            log.info("invert: labels from %s", how)
        result, labels = run_inversion(generator, targets, space, labels,
                                       len(label_map) if label_map else 0, steps=args.steps,
                                       restarts=args.restarts, seed=args.seed)
        x = generate(generator, result.z, labels)
        pitch = inversion.pitch_match(x, raw, meta) if meta["kind"] == "notes" else None
        for i, it in enumerate(items):
            it.update({"distance": float(result.distance[i]),
                       "random_z_distance": float(result.random_z[i])})
            if labels is not None:
                it.update({"label": label_map.names[int(labels[i])], "label_from": how})
            if pitch is not None:
                it["pitch_match"] = float(pitch[i])
        write_outputs(args.out, items, result, x, targets, space, meta, cfg)
        record.update({"distance": space.name, "mean_distance": float(result.distance.mean()),
                       "mean_random_z_distance": float(result.random_z.mean())})
    record["seconds"] = round(time.perf_counter() - start, 2)
    storage.write_json_atomic(storage.join(args.out, "inversion.json"), record)
    if not items:
        raise UserError(f"nothing to invert: all {len(paths)} file(s) rejected "
                        f"(listed in {storage.join(args.out, 'inversion.json')})")
    print(f"inverted {len(items)} item(s) ({len(rejects)} rejected): mean distance "
          f"{record['mean_distance']:.4f} (random z {record['mean_random_z_distance']:.4f}) "
          f"-> {args.out} in {record['seconds']} s")
    return 0
