"""What a person checks on each page that watches a sweep, read from the rendered page.

Each function opens one page in a `Browser`, waits until the page shows what it is for,
and returns a plain dict of what it showed (trial names, job rows, players, plots) for a
test to assert on or a log to print. Nothing here reads the servers' APIs directly, except
Ray's Train runs: Ray 2.60's open-source dashboard has no Train page (its routes are
overview, jobs, serve, cluster, actors, metrics, logs), so a Train run is seen as its
driver job, its actors, and the JSON of `/api/train/v2/runs/v1` opened in the browser.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.parse
from typing import Any

from audiogan.watch.browser import DEEP_QUERY, Browser

TABLE = """
const table = arguments[0] ? document.querySelector(arguments[0]) : document;
if (!table) return [];
const head = Array.from(table.querySelectorAll('thead th')).map(c => c.innerText.trim());
return Array.from(table.querySelectorAll('tbody tr')).map(r => {
  const row = {};
  Array.from(r.cells).forEach((c, i) => { row[head[i] || String(i)] = c.innerText.trim(); });
  return row;
});
"""


def ray_token() -> str:
    """The token a Ray CLI would use: RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH,
    else ~/.ray/auth_token ('' when there is none)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _auth() -> dict[str, str]:
    token = ray_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _rows(b: Browser, url: str, column: str, timeout_s: float = 60.0) -> list[dict[str, str]]:
    """The rows of the page's table that has `column`, once it has rows."""
    b.open(url, headers=_auth())
    return b.wait(f"const rows = (function() {{ {TABLE} }})(null);"
                  f"return rows.length && rows.some(r => {json.dumps(column)} in r) && rows",
                  timeout_s)


def ray_jobs(b: Browser, dashboard: str, timeout_s: float = 60.0) -> list[dict[str, str]]:
    """The Jobs page's rows: Job ID, Entrypoint, Status, ..."""
    return _rows(b, f"{dashboard}/#/jobs", "Entrypoint", timeout_s)


def ray_actors(b: Browser, dashboard: str, timeout_s: float = 60.0) -> list[dict[str, str]]:
    """The Actors page's first page of rows (youngest first): Class, State, Job ID, ..."""
    return _rows(b, f"{dashboard}/#/actors", "Class", timeout_s)


def ray_nodes(b: Browser, dashboard: str, timeout_s: float = 60.0) -> list[dict[str, str]]:
    """The Cluster page's node rows (State, IP, ...)."""
    return _rows(b, f"{dashboard}/#/cluster", "IP / PID", timeout_s)


def ray_train_runs(b: Browser, dashboard: str) -> dict[str, Any]:
    """Train V2 runs as the dashboard's REST endpoint shows them in the browser:
    {"runs": [{name, status, job_id}]} or {"error": the text it answered}."""
    b.open(f"{dashboard}/api/train/v2/runs/v1", headers=_auth())
    text = b.wait("return document.body && document.body.innerText", 30)
    try:
        runs = json.loads(text)["train_runs"]
    except (ValueError, KeyError, TypeError):
        return {"error": text.strip()[:300]}
    return {"runs": [{k: r.get(k) for k in ("name", "status", "job_id")} for r in runs]}


# -- TensorBoard --------------------------------------------------------------------------------
def _blob_run(src: str) -> tuple[str, str]:
    """(run, tag) from a TensorBoard media URL's blob_key (base64url JSON
    [experiment, run, tag, step, index])."""
    key = urllib.parse.parse_qs(urllib.parse.urlparse(src).query).get("blob_key", [""])[0]
    try:
        parts = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    except ValueError:
        return "", ""
    # [experiment, run, tag, step, index]; the Python data provider puts the plugin's name
    # after the experiment: [experiment, plugin, run, tag, step, index].
    names = [p for p in parts if isinstance(p, str)]
    return (names[-2], names[-1]) if len(names) >= 3 else ("", "")


def tensorboard_scalars(b: Browser, url: str, tag: str, runs: list[str],
                        timeout_s: float = 90.0) -> dict[str, Any]:
    """The Time Series page: which of `runs` the run selector lists, and the `tag` card:
    its chart and which runs its data table has values for."""
    card = """
const want = arguments[0];
for (const c of document.querySelectorAll('card-view')) {
  const t = c.querySelector('tb-truncated-path');
  if (t && t.innerText.replace(/\\s+/g, '') === want)
    return {text: c.innerText, charts: c.querySelectorAll('canvas, svg').length};
}
return null;"""
    every_run = (f"const t = document.body.innerText;"
                 f" return {json.dumps(runs)}.every(r => t.includes(r))")
    deadline = time.monotonic() + timeout_s
    while True:  # the page lists the runs it found when it loaded: load it again for new ones
        b.open(f"{url}/#timeseries")
        try:
            b.wait(every_run, min(20.0, max(1.0, deadline - time.monotonic())))
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
    found = b.wait(card, timeout_s, 0.5, tag)
    listed = b.run("const s = document.querySelector('runs-selector');"
                   "return s ? s.innerText : ''")
    return {"runs_listed": [r for r in runs if r in listed],
            "card": tag, "charts": found["charts"],
            "runs_in_card": [r for r in runs if r in found["text"]]}


def tensorboard_media(b: Browser, url: str, kind: str, timeout_s: float = 90.0
                      ) -> list[dict[str, Any]]:
    """The Audio (kind "audio") or Images ("images") dashboard: every player or image with
    its run and tag, once each has loaded (audio: metadata and duration; images: pixels)."""
    tag, ready = (("audio", "e.readyState >= 1 || e.error") if kind == "audio"
                  else ("img", "e.complete"))
    b.open(f"{url}/#{kind}")
    b.wait(f"return (function() {{ const els = (function() {{ {DEEP_QUERY} }})('{tag}');"
           f" return els.length > 0 && els.every(e => {ready}); }})()", timeout_s)
    items = b.deep(tag, "return els.map(e => ({src: e.currentSrc || e.src, "
                        "duration: e.duration || 0, error: e.error ? e.error.code : null, "
                        "width: e.naturalWidth || 0}))")
    out = []
    for item in items:
        run, media_tag = _blob_run(item["src"])
        if run:
            out.append({"run": run, "tag": media_tag, "duration_s": item["duration"],
                        "error": item["error"], "width": item["width"]})
    return out


# -- optuna-dashboard -----------------------------------------------------------------------------
def optuna_study(b: Browser, url: str, study: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """The study's page (history, importances, ...) and its trial list: the plots shown,
    the objective's axis title, the points in the history plot and the Tune trial ids."""
    b.open(f"{url}/dashboard")
    href = b.wait("for (const a of document.querySelectorAll('a[href*=\"/dashboard/studies/\"]'))"
                  " if (a.innerText.includes(arguments[0])) return a.href; return null;",
                  timeout_s, 0.5, study)
    b.open(href)
    b.wait("return document.querySelectorAll('.js-plotly-plot .scatterlayer .point').length > 0",
           timeout_s)
    headings = b.run("return Array.from(document.querySelectorAll('h5, h6')).map(h => h.innerText)")
    points = b.run("return document.querySelectorAll('.js-plotly-plot')[0]"
                   ".querySelectorAll('.scatterlayer .point').length")
    axis = b.run("const t = document.querySelector('.js-plotly-plot .g-ytitle');"
                 " return t ? t.textContent : ''")
    numbers = ",".join(str(i) for i in range(points + 8))  # every trial's details at once
    b.open(href.rstrip("/") + f"/trials?numbers={numbers}")
    text = b.wait("const t = document.body.innerText; return t.includes('tune_trial_id') && t",
                  timeout_s)
    return {"study": study, "url": href, "headings": headings, "history_points": points,
            "objective_axis": axis,
            "trial_numbers": sorted({int(n) for n in re.findall(r"Trial (\d+)", text)}),
            "tune_trial_ids": sorted(set(re.findall(r"tune_trial_id\s*\n?\s*([0-9a-f]{8})", text)))}


# -- the sweep page (from disk) -----------------------------------------------------------------
def sweep_page(b: Browser, index: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """The page `audiogan best` writes, opened from disk: sections, leaderboard rows, every
    player (its file on disk, duration, error) and image, and every URL the page requested."""
    b.open("file://" + urllib.parse.quote(os.path.abspath(index)))
    b.wait("const a = Array.from(document.querySelectorAll('audio'));"
           "return document.readyState === 'complete' &&"
           " a.every(e => e.readyState >= 1 || e.error) &&"
           " Array.from(document.images).every(i => i.complete)", timeout_s)
    players = b.run("return Array.from(document.querySelectorAll('audio')).map(e => ({src:"
                    " e.currentSrc || e.src, duration_s: e.duration || 0,"
                    " error: e.error ? e.error.code : null}))")
    images = b.run("return Array.from(document.images).map(i => ({src: i.currentSrc || i.src,"
                   " width: i.naturalWidth}))")
    for item in players + images:
        parsed = urllib.parse.urlparse(item["src"])
        item["path"] = urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else ""
        item["exists"] = bool(item["path"]) and os.path.isfile(item["path"])
    return {"title": b.run("return document.title"),
            "sections": b.run("return Array.from(document.querySelectorAll('h2'))"
                              ".map(h => h.innerText)"),
            "leaderboard": b.run(TABLE, "#leaderboard"),
            "players": players, "images": images,
            "requests": b.requests()}
