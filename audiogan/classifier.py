"""The digit classifier behind `eval/is`: a small CNN on normalised spectrograms.

`audiogan classifier train --data DIR [--out DIR] [--epochs N]` trains on the dataset's
train split, early-stops on validation accuracy, reports test accuracy, and writes
`classifier.pt` (state dict, `weights_only=True` loadable) and `classifier.json` (labels,
accuracies, the data manifest hash) to `--out` (default `<data>/classifier/`), where
evaluation finds it.

Architecture (chosen for a 2-core CPU): the 128x128 input is average-pooled to 64x64,
then four conv + group-norm + ReLU blocks, three of them strided (group norm behaves the
same in training and evaluation, so early stopping is not fooled by unsettled batch-norm
statistics), adaptive average pooling to 4x4 (keeps coarse frequency position, which separates vowels) and a dropout
linear head. Training augments with random circular time shifts of up to 12 frames,
since digits sit anywhere in their one-second window.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from audiogan import storage
from audiogan.data import shards
from audiogan.errors import UserError

log = logging.getLogger(__name__)

WEIGHTS = "classifier.pt"
INFO = "classifier.json"
MAX_SHIFT_FRAMES = 12


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


def _labelled(data: str, split: str, manifest: dict[str, Any], labels: list[str]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    ex = shards.load_split(data, split, manifest=manifest)
    keep = [i for i, lab in enumerate(ex.labels) if lab in labels]
    y = torch.tensor([labels.index(ex.labels[i]) for i in keep], dtype=torch.long)
    return torch.as_tensor(ex.x[keep]), y


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    if len(y) == 0:
        return float("nan")
    model.eval()
    pred = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


@torch.no_grad()
def validation_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(torch.cat([F.cross_entropy(model(x[i:i + 256]), y[i:i + 256], reduction="none")
                            for i in range(0, len(x), 256)]).mean())


def train_classifier(data: str, epochs: int = 30, patience: int = 5, batch_size: int = 64,
                     lr: float = 2e-3, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    start = time.perf_counter()
    manifest = shards.read_manifest(data)
    if manifest.get("kind") != "spectrogram":
        raise UserError(f"'{data}' holds {manifest.get('kind')} data; the digit classifier "
                        "needs a spectrogram dataset (preprocess sc09, fsdd or wav-dir)")
    labels = [lab for lab in manifest.get("labels", []) if lab != ""]
    if len(labels) < 2:
        raise UserError(f"'{data}' has {len(labels)} labels; a classifier needs at least 2")
    x_tr, y_tr = _labelled(data, "train", manifest, labels)
    x_va, y_va = _labelled(data, "validation", manifest, labels)
    x_te, y_te = _labelled(data, "test", manifest, labels)
    if len(y_tr) == 0:
        raise UserError(f"'{data}' has no labelled training examples")
    if len(y_va) == 0:  # no validation split: hold out 10% of train for early stopping
        perm = torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(seed))
        cut = max(1, len(perm) // 10)
        x_va, y_va, x_tr, y_tr = x_tr[perm[:cut]], y_tr[perm[:cut]], x_tr[perm[cut:]], y_tr[perm[cut:]]
    torch.manual_seed(seed)
    model = DigitCNN(len(labels))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    gen = torch.Generator().manual_seed(seed)
    best, best_acc, best_state, best_epoch, bad = (-1.0, 0.0), -1.0, None, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(y_tr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb = x_tr[idx]
            shift = int(torch.randint(-MAX_SHIFT_FRAMES, MAX_SHIFT_FRAMES + 1, (1,), generator=gen))
            xb = torch.roll(xb, shifts=shift, dims=2)
            # No label smoothing: it caps the softmax confidence, hence the inception score
            # (at 0.05 a perfectly accurate classifier gives at most ~7.5 of 10).
            loss = F.cross_entropy(model(xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        va, va_loss = accuracy(model, x_va, y_va), validation_loss(model, x_va, y_va)
        log.info("classifier epoch %d/%d: train loss %.3f, validation accuracy %.3f, loss %.3f",
                 epoch, epochs, total / len(y_tr), va, va_loss)
        if (va, -va_loss) > best:  # accuracy first, validation loss breaks ties
            best, best_acc, best_epoch, bad = (va, -va_loss), va, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    info = {"labels": labels, "accuracy_test": accuracy(model, x_te, y_te),
            "accuracy_validation": best_acc, "best_epoch": best_epoch, "epochs_run": epoch,
            "counts": {"train": len(y_tr), "validation": len(y_va), "test": len(y_te)},
            "data": data, "data_manifest_hash": shards.manifest_hash(manifest),
            "dataset": manifest.get("dataset"), "width": 16,
            "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__}
    return model.eval(), info


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


def cli_main(args: argparse.Namespace) -> int:
    out = args.out or storage.join(args.data, "classifier")
    kwargs = {"epochs": args.epochs} if getattr(args, "epochs", None) else {}
    model, info = train_classifier(args.data, **kwargs)
    save_classifier(out, model, info)
    print(f"test accuracy {info['accuracy_test']:.4f} ({info['counts']['test']} examples), "
          f"validation {info['accuracy_validation']:.4f}, {info['seconds']} s -> {out}")
    return 0
