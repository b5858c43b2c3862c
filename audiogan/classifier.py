"""The digit classifier behind `eval/is` and `eval/cond_acc`: a small CNN on normalised
spectrograms, made robust to what it judges, spectrograms after the audio round trip.

`audiogan classifier train --data DIR [--out DIR] [--epochs N] [--leave-one-speaker-out]`
trains on the dataset's train split with the augmentations of `audiogan.classifier_augment`
(a Griffin-Lim round-tripped copy of each clip, noise, level, time shift, masks),
early-stops on the mean of its clean and round-tripped validation accuracies, and reports
test accuracy on clean clips and after the round trip (`audiogan.metrics.roundtrip`, the
path every listening metric takes). `--leave-one-speaker-out` also trains one classifier
per speaker on the other speakers' clips (the train split) and tests it on all of that
speaker's clips; the saved classifier is still the one trained on all training data.
It writes `classifier.pt` (state dict, `weights_only=True` loadable) and `classifier.json`
(labels, `accuracy_test`, `accuracy_validation` as before, plus the round-trip and
leave-one-speaker-out figures, the augmentation and the data manifest hash) to `--out`
(default `<data>/classifier/`), where evaluation finds it.
`audiogan classifier evaluate --classifier DIR --data DIR` scores any saved classifier on
the test split: clean, round-tripped, round-tripped with noise, and round-tripped then
peak-normalised as `audiogan sample` writes wavs.

Architecture (chosen for a 2-core CPU): the 128x128 input is average-pooled to 64x64,
then four conv + group-norm + ReLU blocks, three of them strided (group norm behaves the
same in training and evaluation, so early stopping is not fooled by unsettled batch-norm
statistics), adaptive average pooling to 4x4 (keeps coarse frequency position, which
separates vowels) and a dropout linear head.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import pickle
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from audiogan import storage
from audiogan.classifier_augment import (AugmentParams, Normaliser, augment_batch,
                                         round_trip_audio)
from audiogan.data import shards, sources
from audiogan.errors import UserError
from audiogan.metrics import roundtrip

log = logging.getLogger(__name__)

WEIGHTS = "classifier.pt"
INFO = "classifier.json"


class DigitCNN(nn.Module):
    def __init__(self, n_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width

        def block(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                                 nn.GroupNorm(4, cout), nn.ReLU(inplace=True))

        # Strided convolutions rather than max pooling: the large early maps dominate CPU
        # time, so they are made small at once.
        self.features = nn.Sequential(
            block(1, w, 5, 2),                 # 64 -> 32
            block(w, 2 * w, 3, 2),             # 32 -> 16
            block(2 * w, 4 * w, 3, 2),         # 16 -> 8
            block(4 * w, 4 * w, 3, 1), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * w * 16, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 1, frames, bins] normalised spectrograms -> logits [N, classes]."""
        return self.head(self.features(F.avg_pool2d(x, 2)))


@dataclasses.dataclass
class Clips:
    """Labelled clips of one or more splits: raw log magnitudes and their round-tripped audio."""
    raw: torch.Tensor        # [N, frames, bins] float32
    audio: torch.Tensor      # [N, 16384] float32 Griffin-Lim round trip
    y: torch.Tensor          # [N] class indices
    speakers: list[str]      # "" where the file name carries no speaker id

    def subset(self, keep: torch.Tensor) -> "Clips":
        idx = torch.nonzero(keep).flatten()
        return Clips(self.raw[idx], self.audio[idx], self.y[idx],
                     [self.speakers[i] for i in idx.tolist()])

    @staticmethod
    def cat(parts: list["Clips"]) -> "Clips":
        return Clips(torch.cat([p.raw for p in parts]),
                     torch.cat([p.audio for p in parts]),
                     torch.cat([p.y for p in parts]), [s for p in parts for s in p.speakers])

    def clean(self, normalise: Normaliser) -> torch.Tensor:
        return normalise(self.raw.clone())[:, None]

    def heard(self, manifest: dict[str, Any]) -> torch.Tensor:
        return torch.as_tensor(roundtrip.from_audio(self.audio, manifest))


def _speaker(key: str) -> str:
    kind, group = sources.split_group(key.split("#")[0])
    return group if kind == "speaker" else ""


def load_clips(data: str, split: str, manifest: dict[str, Any], labels: list[str], *,
               n_iter: int) -> Clips:
    ex = shards.load_split(data, split, scaled=False, manifest=manifest)
    keep = [i for i, lab in enumerate(ex.labels) if lab in labels]
    raw = torch.as_tensor(ex.x[keep])
    # Round trip through the network layout, as the metrics do (the clip included).
    audio = torch.cat([round_trip_audio(shards.to_network(ex.x[keep][i:i + 1024], manifest),
                                        manifest, n_iter=n_iter)
                       for i in range(0, len(keep), 1024)] or [torch.zeros(0, 16384)])
    y = torch.tensor([labels.index(ex.labels[i]) for i in keep], dtype=torch.long)
    return Clips(raw, audio, y, [_speaker(ex.keys[i]) for i in keep])


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
                     or [torch.zeros(0, 1)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x, batch_size).argmax(1) == y).float().mean())


def scores(model: nn.Module, clips: Clips, manifest: dict[str, Any]) -> dict[str, Any]:
    """Accuracy on clean clips and after the audio round trip."""
    normalise = Normaliser(manifest)
    return {"clean": accuracy(model, clips.clean(normalise), clips.y),
            "round_trip": accuracy(model, clips.heard(manifest), clips.y), "n": len(clips.y)}


def fit(train: Clips, val: Clips, manifest: dict[str, Any], n_classes: int, *, epochs: int,
        patience: int, batch_size: int, lr: float, seed: int, params: AugmentParams
        ) -> tuple[nn.Module, dict[str, Any]]:
    """Train with augmentation; keep the epoch best on mean(clean, round-trip) validation
    accuracy (validation loss breaks ties)."""
    normalise = Normaliser(manifest)
    x_va, x_va_rt = val.clean(normalise), val.heard(manifest)
    torch.manual_seed(seed)
    model = DigitCNN(n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, float] = (-1.0, 0.0)
    best_state, record, bad, epoch = None, {}, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(train.y), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb = augment_batch(train.raw[idx], train.audio[idx], normalise, gen, params)
            # No label smoothing: it caps the softmax confidence, hence the inception score
            # (at 0.05 a perfectly accurate classifier gives at most ~7.5 of 10).
            loss = F.cross_entropy(model(xb), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        logits = predict(model, torch.cat([x_va, x_va_rt]))
        y2 = torch.cat([val.y, val.y])
        va = float((logits.argmax(1) == y2).float().mean())
        va_loss = float(F.cross_entropy(logits, y2))
        log.info("classifier epoch %d/%d: train loss %.3f, validation accuracy (clean and "
                 "round trip) %.3f, loss %.3f", epoch, epochs, total / len(train.y), va, va_loss)
        if (va, -va_loss) > best:
            best, bad = (va, -va_loss), 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            record = {"best_epoch": epoch,
                      "accuracy_validation": accuracy(model, x_va, val.y),
                      "accuracy_validation_round_trip": accuracy(model, x_va_rt, val.y)}
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    return model.eval(), {**record, "epochs_run": epoch}


def _hold_out(train: Clips, seed: int) -> tuple[Clips, Clips]:
    """(train, validation): 10% of train for early stopping when there is no validation."""
    perm = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(seed))
    va = torch.zeros(len(train.y), dtype=torch.bool)
    va[perm[:max(1, len(perm) // 10)]] = True
    return train.subset(~va), train.subset(va)


def leave_one_speaker_out(splits: dict[str, Clips], manifest: dict[str, Any], n_classes: int,
                          **fit_kwargs: Any) -> dict[str, Any]:
    """Per speaker: train on the others' train split (their validation split stops it),
    test on all of the speaker's clips, clean and round-tripped; and the mean of the folds."""
    every = Clips.cat(list(splits.values()))
    speakers = sorted(set(every.speakers))
    if "" in speakers or len(speakers) < 2:
        raise UserError("--leave-one-speaker-out needs speaker ids in every file name "
                        "(FSDD DIGIT_SPEAKER_TAKE.wav, Speech Commands SPEAKER_nohash_N) "
                        f"and at least 2 speakers; found {len(speakers)}")
    folds = {}
    for speaker in speakers:
        start = time.perf_counter()
        others = [s != speaker for s in splits["train"].speakers]
        train = splits["train"].subset(torch.tensor(others))
        val = splits["validation"].subset(torch.tensor(
            [s != speaker for s in splits["validation"].speakers], dtype=torch.bool))
        if len(val.y) == 0:
            train, val = _hold_out(train, fit_kwargs["seed"])
        model, _ = fit(train, val, manifest, n_classes, **fit_kwargs)
        test = every.subset(torch.tensor([s == speaker for s in every.speakers]))
        folds[speaker] = {**scores(model, test, manifest), "n_train": len(train.y),
                          "seconds": round(time.perf_counter() - start, 1)}
        log.info("leave out %s: %s", speaker, folds[speaker])
    return {"folds": folds,
            "mean_clean": float(np.mean([f["clean"] for f in folds.values()])),
            "mean_round_trip": float(np.mean([f["round_trip"] for f in folds.values()]))}


def train_classifier(data: str, epochs: int = 40, patience: int = 8, batch_size: int = 64,
                     lr: float = 2e-3, seed: int = 0, griffin_lim_iters: int = 16,
                     leave_one_speaker_out_too: bool = False,
                     params: AugmentParams = AugmentParams()) -> tuple[nn.Module, dict[str, Any]]:
    start = time.perf_counter()
    manifest = shards.read_manifest(data)
    if manifest.get("kind") != "spectrogram":
        raise UserError(f"'{data}' holds {manifest.get('kind')} data; the digit classifier "
                        "needs a spectrogram dataset (preprocess sc09, fsdd or wav-dir)")
    labels = [lab for lab in manifest.get("labels", []) if lab != ""]
    if len(labels) < 2:
        raise UserError(f"'{data}' has {len(labels)} labels; a classifier needs at least 2")
    splits = {s: load_clips(data, s, manifest, labels, n_iter=griffin_lim_iters)
              for s in shards.SPLITS}
    if len(splits["train"].y) == 0:
        raise UserError(f"'{data}' has no labelled training examples")
    log.info("clips loaded and round-tripped in %.1f s", time.perf_counter() - start)
    fit_kwargs = {"epochs": epochs, "patience": patience, "batch_size": batch_size, "lr": lr,
                  "seed": seed, "params": params}
    train, val = splits["train"], splits["validation"]
    if len(val.y) == 0:
        train, val = _hold_out(train, seed)
    model, record = fit(train, val, manifest, len(labels), **fit_kwargs)
    test = scores(model, splits["test"], manifest)
    info = {"labels": labels, "accuracy_test": test["clean"],
            "accuracy_test_round_trip": test["round_trip"], **record,
            "counts": {"train": len(train.y), "validation": len(val.y), "test": test["n"]},
            "round_trip": {"griffin_lim_iters": griffin_lim_iters,
                           "path": "audiogan.metrics.roundtrip"},
            "augment": params.as_dict(), "seed": seed,
            "data": data, "data_manifest_hash": shards.manifest_hash(manifest),
            "dataset": manifest.get("dataset"), "width": 16,
            "seconds_main": round(time.perf_counter() - start, 1), "torch": torch.__version__}
    if leave_one_speaker_out_too:
        loso_start = time.perf_counter()
        info["leave_one_speaker_out"] = leave_one_speaker_out(splits, manifest, len(labels),
                                                              **fit_kwargs)
        info["leave_one_speaker_out"]["seconds"] = round(time.perf_counter() - loso_start, 1)
    info["seconds"] = round(time.perf_counter() - start, 1)
    return model, info


def save_classifier(out: str, model: nn.Module, info: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    storage.write_bytes_atomic(storage.join(out, WEIGHTS), buf.getvalue())
    storage.write_json_atomic(storage.join(out, INFO), info)


def load_classifier(path: str, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, info) from a directory written by `save_classifier`."""
    try:
        info = json.loads(storage.read_bytes(storage.join(path, INFO)))
        state = torch.load(io.BytesIO(storage.read_bytes(storage.join(path, WEIGHTS))),
                           map_location=device, weights_only=True)
        model = DigitCNN(len(info["labels"]), width=int(info.get("width", 16)))
        model.load_state_dict(state)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(f"cannot load the digit classifier in '{path}': "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        ) from exc
    return model.to(device).eval(), info


def evaluate_classifier(path: str, data: str, griffin_lim_iters: int = 16,
                        snr_db: float = 30.0, seed: int = 0) -> dict[str, Any]:
    """A saved classifier's test accuracy: clean; round-tripped (the metrics' path);
    round-tripped with white noise at `snr_db` (a generator's silence is never digital
    silence); and round-tripped then peak-normalised to `render.PEAK` as `audiogan sample`
    writes wavs (Griffin-Lim from zero phase leaves peaky waveforms, so this is a level
    change of tens of dB)."""
    from audiogan.classifier_augment import add_noise
    from audiogan.render import PEAK

    model, info = load_classifier(path)
    manifest = shards.read_manifest(data)
    test = load_clips(data, "test", manifest, info["labels"], n_iter=griffin_lim_iters)
    gen = torch.Generator().manual_seed(seed)
    noisy = add_noise(test.audio, torch.full((len(test.y),), snr_db), gen)
    peak = test.audio.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    written = roundtrip.from_audio(test.audio * (PEAK / peak), manifest)
    return {**scores(model, test, manifest),
            "round_trip_noise": accuracy(model, torch.as_tensor(
                roundtrip.from_audio(noisy, manifest)), test.y), "noise_snr_db": snr_db,
            "round_trip_peak_normalised": accuracy(model, torch.as_tensor(written), test.y),
            "griffin_lim_iters": griffin_lim_iters, "classifier": path, "data": data}


def cli_main(args: argparse.Namespace) -> int:
    # Small convolutions and the Griffin-Lim batches gain little from a second thread here,
    # and the machine is shared: one thread unless asked.
    torch.set_num_threads(args.threads)
    if args.classifier_command == "evaluate":
        r = evaluate_classifier(args.classifier, args.data, args.griffin_lim_iters)
        print(f"test accuracy ({r['n']} clips): clean {r['clean']:.4f}, round trip "
              f"{r['round_trip']:.4f}, round trip + noise at {r['noise_snr_db']:g} dB SNR "
              f"{r['round_trip_noise']:.4f}, round trip + peak normalisation "
              f"{r['round_trip_peak_normalised']:.4f} ({r['griffin_lim_iters']} Griffin-Lim "
              "iterations)")
        return 0
    out = args.out or storage.join(args.data, "classifier")
    kwargs = {"epochs": args.epochs} if args.epochs else {}
    model, info = train_classifier(args.data, griffin_lim_iters=args.griffin_lim_iters,
                                   leave_one_speaker_out_too=args.leave_one_speaker_out,
                                   seed=args.seed, **kwargs)
    save_classifier(out, model, info)
    print(f"test accuracy ({info['counts']['test']} clips): clean {info['accuracy_test']:.4f}, "
          f"round trip {info['accuracy_test_round_trip']:.4f}; validation clean "
          f"{info['accuracy_validation']:.4f}, round trip "
          f"{info['accuracy_validation_round_trip']:.4f}; {info['seconds_main']} s -> {out}")
    loso = info.get("leave_one_speaker_out")
    if loso:
        for speaker, f in loso["folds"].items():
            print(f"  leave out {speaker}: clean {f['clean']:.4f}, round trip "
                  f"{f['round_trip']:.4f} ({f['n']} clips, trained on {f['n_train']})")
        print(f"  leave-one-speaker-out mean: clean {loso['mean_clean']:.4f}, round trip "
              f"{loso['mean_round_trip']:.4f}; {loso['seconds']} s")
    return 0
