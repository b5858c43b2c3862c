"""The pictures people judge samples by: spectrogram grids and piano rolls, with axes.

Both are drawn with matplotlib's Agg backend into PNG bytes (callers write them
atomically). Axes carry units a listener can map to sound: spectrograms in seconds and
kHz (from the dataset's `sample_rate`, `hop_length`, `n_fft`), piano rolls in seconds and
pitch names (C2, C3, ...), so a phrase's register and rhythm can be read off the picture.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

PIANO_LOW, PIANO_HIGH = 21, 108   # A0 .. C8, the piano's MIDI range
ROLL_FPS = 50                     # piano-roll columns per second


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def spectrogram_grid_png(logmag: np.ndarray, names: Sequence[str], *, sample_rate: int,
                         hop_length: int, n_fft: int, n_rows: int = 0, max_cells: int = 64,
                         row_names: Sequence[str] | None = None) -> bytes:
    """Spectrograms [N, frames, bins] in a grid: square-ish, or `n_rows` rows of equal
    length (one per label, named by `row_names`), each capped at max_cells // n_rows
    columns. Time in s on the bottom row, frequency in kHz on the left column."""
    plt = _pyplot()
    logmag = np.asarray(logmag)
    if n_rows:
        per_row = len(logmag) // n_rows
        rows, cols = n_rows, max(1, min(per_row, max_cells // n_rows))
        cells = [r * per_row + c if c < per_row else -1 for r in range(rows) for c in range(cols)]
    else:
        k = min(len(logmag), max_cells)
        cols = int(np.ceil(np.sqrt(k)))
        rows = int(np.ceil(k / cols))
        cells = [i if i < k else -1 for i in range(rows * cols)]
    frames, bins = logmag.shape[1], logmag.shape[2]
    extent = (0.0, frames * hop_length / sample_rate, 0.0, bins * sample_rate / n_fft / 1000)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols + 0.6, 1.7 * rows + 0.5),
                             squeeze=False, sharex=True, sharey=True)
    for n, (i, ax) in enumerate(zip(cells, axes.flat)):
        r, c = divmod(n, cols)
        if i < 0:
            ax.axis("off")
            continue
        ax.imshow(logmag[i].T, origin="lower", aspect="auto", cmap="magma", extent=extent)
        ax.set_title(names[i], fontsize=6)
        ax.tick_params(labelsize=6)
        if c == 0:
            label = "kHz" if row_names is None else f"{row_names[r]}\nkHz"
            ax.set_ylabel(label, fontsize=7)
        if r == rows - 1:
            ax.set_xlabel("time (s)", fontsize=7)
    fig.tight_layout()
    return _png(fig, dpi=80)


def piano_roll_png(pm: Any, title: str = "") -> bytes:
    """A pretty_midi performance as a piano roll: time in s, pitch names on the left
    (every C labelled), velocity as darkness, cropped to the pitches played (±3)."""
    import pretty_midi

    plt = _pyplot()
    roll = pm.get_piano_roll(fs=ROLL_FPS)  # [128 pitches, columns], velocities
    played = np.flatnonzero(roll.any(axis=1))
    lo = max(PIANO_LOW, int(played.min()) - 3) if played.size else 48
    hi = min(PIANO_HIGH, int(played.max()) + 3) if played.size else 72
    part = roll[lo:hi + 1] if roll.size else np.zeros((hi - lo + 1, 1))
    seconds = max(part.shape[1] / ROLL_FPS, 1.0 / ROLL_FPS)
    fig, ax = plt.subplots(figsize=(min(14.0, 2.0 + 0.6 * seconds), 3.2))
    ax.imshow(part, origin="lower", aspect="auto", cmap="gray_r", vmin=0, vmax=127,
              extent=(0.0, seconds, lo - 0.5, hi + 0.5), interpolation="nearest")
    cs = [p for p in range(lo, hi + 1) if p % 12 == 0] or [lo]
    ax.set_yticks(cs, [pretty_midi.note_number_to_name(p) for p in cs], fontsize=7)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("pitch", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="y", color="0.85", linewidth=0.5)
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _png(fig, dpi=100)
