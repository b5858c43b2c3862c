"""The sweep page: OUT/page/index.html and its media, written by `audiogan best`.

One static HTML file that opens from disk with no server and fetches nothing from the
network: every picture and sound is a file under `page/media/`, referenced by a relative
path, and the styles are inline. It holds the leaderboard, the plots `audiogan best`
drew (the objective over critic steps, against each hyperparameter, importances, the
Pareto front), and for the best trial, the baseline and the final stage's trials their
samples (`audiogan.sweep.page_media`): the spectrogram grid or piano rolls, and an audio
player for each sample. A folder, so it can be copied or zipped whole.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from typing import Any, Sequence

from audiogan import storage
from audiogan.sweep.page_media import Entry, entries, write_media

PAGE_DIR = "page"
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #eee; }
img.plot { max-width: 100%; margin: 0.5em 0; }
.samples { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figure img { width: 320px; height: 110px; object-fit: fill; display: block;
             image-rendering: pixelated; }
.note { color: #666; font-style: italic; }
"""


def _e(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _table(board: Any) -> str:
    cols = [c for c in board.columns if c != "checkpoint"]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
                   for row in board[cols].itertuples(index=False))
    return f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _summary(info: dict[str, Any]) -> str:
    params = ", ".join(f"<code>{_e(k)}</code> = {_e(v)}" for k, v in info["params"].items())
    lines = [f"Best trial <b>{_e(info['trial_id'])}</b> (picked by the {_e(info['picked_by'])}): "
             f"<code>{_e(info['metric'])}</code> = {_e(info['value'])} ({_e(info['mode'])}) at "
             f"{_e(info['at_critic_steps'])} critic steps; {params}."]
    base = info.get("baseline")
    if base:
        lines.append(f"Baseline (the paper's recipe): trial <b>{_e(base['trial_id'])}</b>, "
                     f"<code>{_e(info['metric'])}</code> = {_e(base['value'])}.")
    lines.append(f"{_e(info['trials'])} trials; ASHA stopped {_e(info['stopped_early_by_asha'])} "
                 f"early; by status: {_e(info['trials_by_status'])}.")
    return "".join(f"<p>{line}</p>" for line in lines)


def _samples(e: Entry) -> str:
    roles = ", ".join(e.roles)
    params = ", ".join(f"{_e(k)} = {_e(v)}" for k, v in e.params.items())
    head = f'<h3 id="trial_{_e(e.trial_id)}">Trial {_e(e.trial_id)} ({_e(roles)})</h3>' \
           f"<p>{params}</p>"
    if e.note:
        return head + f'<p class="note">{_e(e.note)}</p>'
    src = lambda f: html.escape(f"media/{e.folder}/{f}", quote=True)  # noqa: E731
    figures = []
    grid = [f for f in e.files if f == "spectrograms.png"]
    if grid:
        figures.append(f'<figure><img class="plot" src="{src(grid[0])}" alt="spectrograms of '
                       f'trial {_e(e.trial_id)}"></figure>')
    for wav in (f for f in e.files if f.endswith(".wav")):
        stem = wav[:-4]
        roll = f"{stem}.png" if f"{stem}.png" in e.files else ""
        midi = f"{stem}.mid" if f"{stem}.mid" in e.files else ""
        figures.append(
            "<figure>" + (f'<img src="{src(roll)}" alt="piano roll {_e(stem)}">' if roll else "")
            + f"<figcaption>{_e(stem)}" + (f' (<a href="{src(midi)}">MIDI</a>)' if midi else "")
            + f'</figcaption><audio controls preload="metadata" src="{src(wav)}"></audio></figure>')
    return head + f"<p>Audio: {_e(e.backend)}.</p>" + '<div class="samples">' + \
        "".join(figures) + "</div>"


def render(title: str, board: Any, info: dict[str, Any], plots: Sequence[str],
           items: Sequence[Entry]) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>", _summary(info),
             "<h2>Leaderboard</h2>", _table(board), "<h2>Plots</h2>"]
    parts += [f'<img class="plot" src="media/plots/{html.escape(os.path.basename(p), quote=True)}"'
              f' alt="{_e(os.path.basename(p))}">' for p in plots]
    parts += ["<h2>Samples</h2>",
              "<p>Seeds as <code>audiogan sample</code> draws them; clips cut to their first "
              "seconds.</p>", *[_samples(e) for e in items], "</body></html>"]
    return "\n".join(parts)


def write_sweep_page(out: str, board: Any, info: dict[str, Any], plots: Sequence[str],
                     trials: Sequence[Any], seeds: Sequence[int]) -> str:
    """Write OUT/page/ (index.html + media/); returns the index's path (or URI)."""
    local = out if not storage.is_uri(out) else tempfile.mkdtemp(prefix="audiogan-page-")
    # Built beside the old page and swapped in whole: a crash leaves the old page or none
    # half-written.
    final = os.path.join(local, PAGE_DIR)
    page = tempfile.mkdtemp(prefix=f".{PAGE_DIR}-", dir=local)
    media = os.path.join(page, "media")
    os.makedirs(os.path.join(media, "plots"))
    for p in plots:
        shutil.copyfile(p, os.path.join(media, "plots", os.path.basename(p)))
    items = entries(info, trials, storage.join(out, "checkpoint"))
    write_media(items, media, seeds)
    title = f"Sweep {os.path.basename(str(info['sweep']).rstrip('/'))}"
    storage.write_bytes_atomic(os.path.join(page, "index.html"),
                               render(title, board, info, plots, items).encode())
    old = final + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(page, final)
    shutil.rmtree(old, ignore_errors=True)
    page = final
    if not storage.is_uri(out):
        return os.path.join(page, "index.html")
    for root, _, files in os.walk(page):  # object storage: upload the finished folder
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            storage.write_bytes_atomic(storage.join(out, os.path.relpath(path, local)), data)
    shutil.rmtree(local, ignore_errors=True)
    return storage.join(out, PAGE_DIR, "index.html")
