"""The digit classifier behind `eval/is` and `eval/cond_acc`: a small CNN on normalised
spectrograms, made robust to what it judges, spectrograms after the audio round trip.

`train_classifier` trains on a dataset's train split with the augmentations of
`audiogan.classifier_augment` (a Griffin-Lim round-tripped copy of each clip, noise, level,
time shift, masks), keeps the epoch best on the mean of its clean and round-tripped
validation accuracies, and reports test accuracy on clean clips and after the round trip
(`audiogan.metrics.roundtrip`, the path every listening metric takes). `save_classifier`
writes `classifier.pt` (state dict, `weights_only=True` loadable) and `classifier.json`.
The commands are in `audiogan.classifier_cli`.

Architecture (chosen for a 2-core CPU): the 128x128 input is average-pooled to 64x64,
then four conv + group-norm + ReLU blocks, three of them strided (group norm behaves the
same in training and evaluation, so early stopping is not fooled by unsettled batch-norm
statistics), adaptive average pooling to 4x4 (keeps coarse frequency position, which
separates vowels) and a dropout linear head.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import pickle
import time
from typing import Any

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
MIN_EPOCH = 1024  # examples per epoch at least (see `fit`)


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
               n_iter: int, momentum: float = 0.0) -> Clips:
    ex = shards.load_split(data, split, scaled=False, manifest=manifest)
    keep = [i for i, lab in enumerate(ex.labels) if lab in labels]
    x = ex.x[keep]
    # Round trip through the network layout, as the metrics do (the clip included), in
    # chunks so the normalised copy stays small.
    audio = torch.cat([round_trip_audio(shards.to_network(x[i:i + 1024], manifest),
                                        manifest, n_iter=n_iter, momentum=momentum)
                       for i in range(0, len(x), 1024)] or [torch.zeros(0, 16384)])
    raw = torch.as_tensor(x)
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


def fit(train: Clips, val: Clips, manifest: dict[str, Any], n_classes: int, *,
        epochs: int = 40, patience: int = 8, batch_size: int = 64, lr: float = 2e-3,
        seed: int = 0, params: AugmentParams = AugmentParams(), min_epoch: int = MIN_EPOCH
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
    # An epoch is at least `min_epoch` examples (whole reshuffled passes): a small dataset
    # (the demo's 280 training clips) gets enough optimiser steps. Measured there (40 test
    # clips): 0.55 with one pass per epoch, 0.65 with 1,024 examples (~1 min), 0.80 with
    # 1,600 (~2 min).
    passes = max(1, -(-min_epoch // len(train.y)))
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.cat([torch.randperm(len(train.y), generator=gen) for _ in range(passes)])
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


def hold_out(train: Clips, seed: int) -> tuple[Clips, Clips]:
    """(train, validation): 10% of train for early stopping when there is no validation."""
    perm = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(seed))
    va = torch.zeros(len(train.y), dtype=torch.bool)
    va[perm[:max(1, len(perm) // 10)]] = True
    return train.subset(~va), train.subset(va)


@dataclasses.dataclass
class Dataset:
    """A spectrogram dataset's labelled clips, each split round-tripped once."""
    data: str
    manifest: dict[str, Any]
    labels: list[str]
    splits: dict[str, Clips]
    griffin_lim_iters: int
    griffin_lim_momentum: float = 0.0


def load_dataset(data: str, griffin_lim_iters: int = 16, griffin_lim_momentum: float = 0.0
                 ) -> Dataset:
    start = time.perf_counter()
    manifest = shards.read_manifest(data)
    if manifest.get("kind") != "spectrogram":
        raise UserError(f"'{data}' holds {manifest.get('kind')} data; the digit classifier "
                        "needs a spectrogram dataset (preprocess sc09, fsdd or wav-dir)")
    if shards.is_complex(manifest):
        raise UserError(f"'{data}' holds complex spectrograms; the digit classifier judges "
                        "log magnitudes: train it on the log-magnitude dataset of the same "
                        "clips (a complex run's metrics.reference_data)")
    labels = [lab for lab in manifest.get("labels", []) if lab != ""]
    if len(labels) < 2:
        raise UserError(f"'{data}' has {len(labels)} labels; a classifier needs at least 2")
    splits = {s: load_clips(data, s, manifest, labels, n_iter=griffin_lim_iters,
                            momentum=griffin_lim_momentum) for s in shards.SPLITS}
    if len(splits["train"].y) == 0:
        raise UserError(f"'{data}' has no labelled training examples")
    log.info("clips loaded and round-tripped in %.1f s", time.perf_counter() - start)
    return Dataset(data, manifest, labels, splits, griffin_lim_iters, griffin_lim_momentum)


def train_classifier(ds: Dataset, **fit_kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier of `ds` trained on its train split (`fit_kwargs` as `fit` takes);
    info for classifier.json (`labels`, `accuracy_test`, `accuracy_validation` as older
    readers expect them)."""
    start = time.perf_counter()
    seed, params = fit_kwargs.get("seed", 0), fit_kwargs.get("params", AugmentParams())
    train, val = ds.splits["train"], ds.splits["validation"]
    if len(val.y) == 0:
        train, val = hold_out(train, seed)
    model, record = fit(train, val, ds.manifest, len(ds.labels), **fit_kwargs)
    test = scores(model, ds.splits["test"], ds.manifest)
    info = {"labels": ds.labels, "accuracy_test": test["clean"],
            "accuracy_test_round_trip": test["round_trip"], **record,
            "counts": {"train": len(train.y), "validation": len(val.y), "test": test["n"]},
            "round_trip": {"griffin_lim_iters": ds.griffin_lim_iters,
                           "griffin_lim_momentum": ds.griffin_lim_momentum,
                           "path": "audiogan.metrics.roundtrip"},
            "augment": params.as_dict(), "seed": seed,
            "data": ds.data, "data_manifest_hash": shards.manifest_hash(ds.manifest),
            "dataset": ds.manifest.get("dataset"), "width": 16,
            "seconds_training": round(time.perf_counter() - start, 1),
            "torch": torch.__version__}
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
