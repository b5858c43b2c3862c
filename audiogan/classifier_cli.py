"""`audiogan classifier train` and `audiogan classifier evaluate`.

`audiogan classifier train --data DIR [--out DIR] [--epochs N] [--leave-one-speaker-out]`
trains the digit classifier (`audiogan.classifier`) and writes `classifier.pt` and
`classifier.json` (labels, `accuracy_test` and `accuracy_validation` as before, plus
`accuracy_test_round_trip`, `accuracy_validation_round_trip`, the round trip's Griffin-Lim
iterations, the augmentation and the data manifest hash) to `--out` (default
`<data>/classifier/`), where evaluation finds it. `--leave-one-speaker-out` also trains one
classifier per speaker on the other speakers' clips (their train split; their validation
split stops it) and tests it on all of that speaker's clips, clean and round-tripped; the
folds and their mean go to `classifier.json` under `leave_one_speaker_out`. The saved
classifier is still the one trained on all training data.

`audiogan classifier evaluate --classifier DIR --data DIR` scores any saved classifier on
the test split: clean, round-tripped, round-tripped with noise, and round-tripped then
peak-normalised as `audiogan sample` writes wavs.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import torch

from audiogan import storage
from audiogan.classifier import (Clips, Dataset, accuracy, fit, hold_out, load_classifier,
                                 load_clips, load_dataset, save_classifier, scores,
                                 train_classifier)
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.metrics import roundtrip

log = logging.getLogger(__name__)


def speakers(ds: Dataset) -> list[str]:
    """The speakers of every clip; a UserError when a file name carries none."""
    ids = [s for clips in ds.splits.values() for s in clips.speakers]
    found = sorted(set(ids) - {""})
    if "" in ids or len(found) < 2:
        raise UserError("--leave-one-speaker-out needs a speaker id in every file name "
                        "(FSDD DIGIT_SPEAKER_TAKE.wav, Speech Commands SPEAKER_nohash_N) and "
                        f"at least 2 speakers: {ids.count('')} clips have none, "
                        f"{len(found)} speakers found")
    return found


def leave_one_speaker_out(ds: Dataset, **fit_kwargs: Any) -> dict[str, Any]:
    """Per speaker: train on the others' train split (their validation split stops it),
    test on all of the speaker's clips, clean and round-tripped; and the mean of the folds."""
    start_all = time.perf_counter()
    splits, manifest, n_classes = ds.splits, ds.manifest, len(ds.labels)
    every = Clips.cat(list(splits.values()))
    folds = {}
    for speaker in speakers(ds):
        start = time.perf_counter()
        others = [s != speaker for s in splits["train"].speakers]
        train = splits["train"].subset(torch.tensor(others))
        val = splits["validation"].subset(torch.tensor(
            [s != speaker for s in splits["validation"].speakers], dtype=torch.bool))
        if len(val.y) == 0:
            train, val = hold_out(train, fit_kwargs["seed"])
        model, _ = fit(train, val, manifest, n_classes, **fit_kwargs)
        test = every.subset(torch.tensor([s == speaker for s in every.speakers]))
        folds[speaker] = {**scores(model, test, manifest), "n_train": len(train.y),
                          "seconds": round(time.perf_counter() - start, 1)}
        log.info("leave out %s: %s", speaker, folds[speaker])
    return {"folds": folds,
            "mean_clean": float(np.mean([f["clean"] for f in folds.values()])),
            "mean_round_trip": float(np.mean([f["round_trip"] for f in folds.values()])),
            "seconds": round(time.perf_counter() - start_all, 1)}


def evaluate_classifier(path: str, data: str, griffin_lim_iters: int = 16,
                        snr_db: float = 30.0, seed: int = 0, griffin_lim_momentum: float = 0.0
                        ) -> dict[str, Any]:
    """A saved classifier's test accuracy: clean; round-tripped (the metrics' path);
    round-tripped with white noise at `snr_db` (a generator's silence is never digital
    silence); and round-tripped then peak-normalised to `render.PEAK` as `audiogan sample`
    writes wavs (Griffin-Lim from zero phase leaves peaky waveforms, so this is a level
    change of tens of dB)."""
    from audiogan.classifier_augment import add_noise
    from audiogan.render import PEAK

    model, info = load_classifier(path)
    manifest = shards.read_manifest(data)
    test = load_clips(data, "test", manifest, info["labels"], n_iter=griffin_lim_iters,
                      momentum=griffin_lim_momentum)
    gen = torch.Generator().manual_seed(seed)
    noisy = add_noise(test.audio, torch.full((len(test.y),), snr_db), gen)
    peak = test.audio.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    written = roundtrip.from_audio(test.audio * (PEAK / peak), manifest)
    return {**scores(model, test, manifest),
            "round_trip_noise": accuracy(model, torch.as_tensor(
                roundtrip.from_audio(noisy, manifest)), test.y), "noise_snr_db": snr_db,
            "round_trip_peak_normalised": accuracy(model, torch.as_tensor(written), test.y),
            "griffin_lim_iters": griffin_lim_iters, "griffin_lim_momentum": griffin_lim_momentum,
            "classifier": path, "data": data}


def cli_main(args: argparse.Namespace) -> int:
    # Small convolutions and the Griffin-Lim batches gain little from a second thread here,
    # and the machine is shared: one thread unless asked.
    torch.set_num_threads(args.threads)
    if args.classifier_command == "evaluate":
        r = evaluate_classifier(args.classifier, args.data, args.griffin_lim_iters,
                                griffin_lim_momentum=args.griffin_lim_momentum)
        print(f"test accuracy ({r['n']} clips): clean {r['clean']:.4f}, round trip "
              f"{r['round_trip']:.4f}, round trip + noise at {r['noise_snr_db']:g} dB SNR "
              f"{r['round_trip_noise']:.4f}, round trip + peak normalisation "
              f"{r['round_trip_peak_normalised']:.4f} ({r['griffin_lim_iters']} Griffin-Lim "
              f"iterations, momentum {r['griffin_lim_momentum']:g})")
        return 0
    out = args.out or storage.join(args.data, "classifier")
    start = time.perf_counter()
    ds = load_dataset(args.data, args.griffin_lim_iters, args.griffin_lim_momentum)
    if args.leave_one_speaker_out:  # before any training: a missing speaker id is a mistake
        speakers(ds)
    fit_kwargs: dict[str, Any] = {"seed": args.seed, **({"epochs": args.epochs}
                                                         if args.epochs else {})}
    model, info = train_classifier(ds, **fit_kwargs)
    info["seconds"] = round(time.perf_counter() - start, 1)  # loading and round trips too
    if args.leave_one_speaker_out:
        info["leave_one_speaker_out"] = leave_one_speaker_out(ds, **fit_kwargs)
    save_classifier(out, model, info)
    print(f"test accuracy ({info['counts']['test']} clips): clean {info['accuracy_test']:.4f}, "
          f"round trip {info['accuracy_test_round_trip']:.4f}; validation clean "
          f"{info['accuracy_validation']:.4f}, round trip "
          f"{info['accuracy_validation_round_trip']:.4f}; {info['seconds']} s -> {out}")
    loso = info.get("leave_one_speaker_out")
    if loso:
        for speaker, f in loso["folds"].items():
            print(f"  leave out {speaker}: clean {f['clean']:.4f}, round trip "
                  f"{f['round_trip']:.4f} ({f['n']} clips, trained on {f['n_train']})")
        print(f"  leave-one-speaker-out mean: clean {loso['mean_clean']:.4f}, round trip "
              f"{loso['mean_round_trip']:.4f}; {loso['seconds']} s")
    return 0
