"""Class labels for conditional training: which raw labels become which class index.

The shards' `label` column holds the raw label: a digit '0'..'9' for spoken digits (from
the file name, or for `wav-dir` the folder name), MAESTRO's `canonical_composer` for piano,
"" where the source has none (`midi-dir`). Preprocessing records the windows per split and
raw label in the manifest (`label_counts`), so the map is derived from the manifest alone,
without reading the shards:

- spectrograms: the sorted raw labels of the training split (the digits);
- notes: composers ranked by number of TRAINING windows, most first, the name breaking
  ties; those with at least `min_class_windows` windows become classes, at most
  `n_composers` of them.

Everything else -- composers below the cut, labels seen only in validation/test, "" --
maps to the last class, `other`, which exists only when something maps to it. The map
(names, rule, parameters, training windows per class) is stored in each checkpoint's
meta.json as `label_map`, so sampling and evaluation never recompute it from data.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Sequence

import numpy as np

from audiogan.errors import UserError

OTHER = "other"
SORTED_RULE = "sorted labels of the training split"
RANKED_RULE = ("composers ranked by training windows (name breaks ties), at least "
               "min_class_windows each, at most n_composers; the rest 'other'")


@dataclasses.dataclass(frozen=True)
class LabelMap:
    names: tuple[str, ...]          # class index -> name
    rule: str
    params: dict[str, int]
    train_counts: tuple[int, ...]   # training windows per class (the label frequencies)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def probs(self) -> list[float]:
        """The training split's class frequencies (fake and evaluation labels follow them)."""
        total = sum(self.train_counts)
        return [c / total for c in self.train_counts]

    def indices(self, raw: Sequence[str]) -> np.ndarray:
        """Raw shard labels -> class indices (int64); unmapped ones -> `other`."""
        lookup = {name: i for i, name in enumerate(self.names)}
        other = lookup.get(OTHER, -1)
        out = np.array([lookup.get(lab, other) for lab in raw], np.int64)
        if (out < 0).any():
            bad = raw[int(np.argmax(out < 0))]
            raise UserError(f"label '{bad}' is not a class of this label map and there is "
                            "no 'other' class")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "rule": self.rule, "params": dict(self.params),
                "train_counts": list(self.train_counts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LabelMap":
        return cls(tuple(d["names"]), str(d["rule"]), dict(d.get("params", {})),
                   tuple(int(c) for c in d["train_counts"]))

    def parse(self, text: str) -> list[int]:
        """`--labels` text -> class indices: a comma list of names (case-insensitive, or a
        unique part of one: 'chopin'), numbers and ranges 'A-B'. Numbers are the names
        themselves when the classes are numbers (digits: '3' is the digit 3, '0-9' all ten),
        else class indices (composers: '0' is the most frequent). 'all' is every class."""
        if text.strip().lower() == "all":
            return list(range(len(self)))
        numeric = all(n.isdigit() for n in self.names if n != OTHER)
        out: list[int] = []
        for token in (t.strip() for t in text.split(",")):
            m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", token)
            hit = None if m and numeric else self._by_name(token)
            if hit is not None:
                out.append(hit)
                continue
            if not m:
                raise UserError(f"--labels '{text}': '{token}' is no class; classes are "
                                f"{', '.join(self.names)}")
            for i in range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1):
                index = self.names.index(str(i)) if numeric and str(i) in self.names else \
                    None if numeric else i
                if index is None or not 0 <= index < len(self):
                    what = f"classes {', '.join(self.names)}" if numeric else \
                        f"indices 0-{len(self) - 1}: {', '.join(self.names)}"
                    raise UserError(f"--labels '{text}': no class {i} ({what})")
                out.append(index)
        return out

    def _by_name(self, token: str) -> int | None:
        lowered = [n.lower() for n in self.names]
        if token.lower() in lowered:
            return lowered.index(token.lower())
        parts = [i for i, n in enumerate(lowered) if token and token.lower() in n]
        return parts[0] if len(parts) == 1 else None


def label_map(manifest: Mapping[str, Any], *, n_composers: int, min_class_windows: int,
              data: str = "the data") -> LabelMap:
    """The class map of a preprocessed dataset (see the module docstring); one-line
    `UserError`s when the data cannot be conditioned on."""
    counts = manifest.get("label_counts")
    if manifest.get("dataset") == "midi-dir":
        raise UserError(f"model.conditional needs labels; '{data}' is a midi-dir dataset, "
                        "which has none (MAESTRO's composers are labels: preprocess maestro)")
    if not isinstance(counts, Mapping):
        raise UserError(f"model.conditional needs per-label window counts, which '{data}' "
                        "predates: preprocess it again (or train with model.conditional=false)")
    train = {lab: int(n) for lab, n in counts.get("train", {}).items() if lab and int(n) > 0}
    if not train:
        raise UserError(f"model.conditional needs labels; '{data}' has no labelled training "
                        "windows")
    if manifest.get("kind") == "notes":
        ranked = sorted(train.items(), key=lambda kv: (-kv[1], kv[0]))
        names = [lab for lab, n in ranked if n >= min_class_windows][:n_composers]
        rule, params = RANKED_RULE, {"n_composers": n_composers,
                                     "min_class_windows": min_class_windows}
        if not names:
            raise UserError(f"no composer in '{data}' has data.min_class_windows="
                            f"{min_class_windows} training windows (most: {ranked[0][1]}); "
                            "lower it")
    else:
        names, rule, params = sorted(train), SORTED_RULE, {}
    seen = {lab for split in counts.values() for lab, n in split.items() if int(n) > 0}
    train_counts = [train[n] for n in names]
    if seen - set(names):
        names.append(OTHER)
        train_counts.append(sum(n for lab, n in train.items() if lab not in names)
                            + int(counts.get("train", {}).get("", 0)))
    return LabelMap(tuple(names), rule, params, tuple(train_counts))
