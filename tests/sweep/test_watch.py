"""What a user watching a sweep sees, checked in headless Chromium (Debian's chromium and
chromedriver, a pinned selenium): the pages open while the smoke sweep and one 2-worker
`audiogan train` run are live (tests/sweep/watcher.py), then the sweep page from disk.

Skipped, with the reason in `-ra`'s summary, where chromium or selenium is missing (CI
installs them and sets AUDIOGAN_REQUIRE_BROWSER=1, which makes a missing browser fail).
"""

from __future__ import annotations

import json
import os

import pytest

from audiogan.cli import main
from audiogan.sweep.results import load_trials
from tests.sweep.conftest import NAME, browser_skip_reason

pytestmark = pytest.mark.slow
_REASON = browser_skip_reason()
if _REASON:  # one line in `make test`'s summary (-ra), for the whole module
    pytest.skip(f"browser checks skipped: {_REASON}", allow_module_level=True)


@pytest.fixture(scope="module")
def watched(smoke_sweep):
    record = smoke_sweep["watch"]
    assert record is not None
    print(json.dumps({k: v for k, v in record.items() if k != "train_out"}, indent=1,
                     default=str)[:20000])
    return record


def _seen(watched, name: str):
    check = watched["seen"][name]
    assert check.get("error") is None, f"{name}: {check['error']}"
    return check


def _trials(smoke_sweep) -> set[str]:
    return {f"trial_{t.trial_id}" for t in load_trials(smoke_sweep["dir"], "eval/ndb", "min")}


def test_ray_dashboard_jobs_shows_the_live_sweep(watched):
    check = _seen(watched, "sweep_jobs")
    assert check["sweep_live"]
    rows = [r for r in check["value"] if "audiogan sweep" in r.get("Entrypoint", "")]
    assert rows and rows[0]["Status"] == "RUNNING", check["value"]
    # 1-worker trials run in the Tune trial process, no TorchTrainer: no Train run exists.
    runs = _seen(watched, "sweep_train_runs")
    assert runs["sweep_live"]
    assert not runs["value"].get("runs"), runs["value"]


def test_ray_dashboard_shows_the_two_worker_train_run(watched):
    runs = _seen(watched, "cluster_train_runs")
    assert runs["train_live"]
    assert {"name": "train2", "status": "RUNNING"}.items() <= \
        next(r for r in runs["value"]["runs"] if r["name"] == "train2").items()
    jobs = _seen(watched, "cluster_jobs")["value"]
    train_jobs = [r for r in jobs if "audiogan train" in r.get("Entrypoint", "")
                  and r["Status"] == "RUNNING"]
    assert train_jobs, jobs
    actors = _seen(watched, "cluster_actors")["value"]
    alive = [r["Class"] for r in actors if r.get("State") == "ALIVE"]
    assert alive.count("RayTrainWorker") == 2 and "TrainController" in alive, actors
    nodes = _seen(watched, "cluster_nodes")["value"]
    assert any("ALIVE" in json.dumps(n) for n in nodes), nodes


def test_optuna_dashboard_opens_the_study_while_the_sweep_writes_it(watched, smoke_sweep):
    check = _seen(watched, "optuna")
    assert check["sweep_live"]
    study = check["value"]
    assert {"History", "Hyperparameter Importance"} <= set(study["headings"])
    assert study["objective_axis"] == "eval/ndb"  # the study names its objective
    assert study["history_points"] >= 1 and study["trial_numbers"]
    assert study["tune_trial_ids"]
    assert {f"trial_{i}" for i in study["tune_trial_ids"]} <= _trials(smoke_sweep)


def test_tensorboard_shows_every_trial_its_curve_audio_and_images(watched):
    expected = watched["seen"]["tb_expected"]["value"]
    assert expected["with_events"] and expected["evaluated"]
    scalars = _seen(watched, "tb_scalars")["value"]
    assert scalars["runs_listed"] == expected["with_events"]
    assert scalars["charts"] >= 1
    assert set(expected["evaluated"]) <= set(scalars["runs_in_card"])
    for kind in ("tb_audio", "tb_images"):
        items = _seen(watched, kind)["value"]
        ok = {i["run"] for i in items if i["error"] is None
              and (i["duration_s"] > 0 if kind == "tb_audio" else i["width"] > 0)}
        assert set(expected["evaluated"]) <= ok, (kind, items)


def test_status_reads_the_live_sweep_and_the_finished_one(watched, smoke_sweep, capsys):
    live = _seen(watched, "status_live")
    text = live["value"]
    assert live["sweep_live"] and "search running" in text and "eval/ndb (min)" in text, text
    states = [line.split()[1] for line in text.splitlines()[2:] if line.strip()]
    assert states and set(states) & {"RUNNING", "PENDING", "STARTING"}, text
    assert main(["status", smoke_sweep["dir"]]) == 0
    out = capsys.readouterr().out
    assert out.count("TERMINATED") == len(_trials(smoke_sweep)) and "search done" in out


def test_watching_leaves_no_process_behind(watched):
    assert watched["left_behind"] == {}
    assert watched["train_rc"] == 130, watched["train_out"]


def test_sweep_page_opens_from_disk_with_players(smoke_sweep, tmp_path):
    from audiogan.watch import pages, procs
    from audiogan.watch.browser import Browser

    out = str(tmp_path / "best")
    assert main(["best", smoke_sweep["dir"], "--out", out, "--page-seeds", "2"]) == 0
    info = json.load(open(os.path.join(out, "best.json")))
    with Browser(height=1600) as b:
        marker = b.marker
        seen = pages.sweep_page(b, os.path.join(out, "page", "index.html"))
    print(json.dumps(seen, indent=1)[:6000])
    assert procs.marked(marker) == []
    assert seen["title"] == f"Sweep {NAME}"
    assert seen["sections"] == ["Leaderboard", "Plots", "Samples"]
    assert {r["trial_id"] for r in seen["leaderboard"]} == \
        {t[len("trial_"):] for t in _trials(smoke_sweep)}
    heard = {os.path.basename(os.path.dirname(p["path"])) for p in seen["players"]}
    assert {f"trial_{info['trial_id']}", f"trial_{info['baseline']['trial_id']}"} <= heard
    assert len(seen["players"]) == 2 * len(heard)
    for item in seen["players"]:
        assert item["exists"] and item["error"] is None and item["duration_s"] > 0, item
    for item in seen["images"]:
        assert item["exists"] and item["width"] > 0, item
    assert len(seen["images"]) >= 3 + len(seen["players"])  # plots + a roll per sample
    # Nothing leaves the machine: files, data URLs and the browser's own built-in resources
    # (Chromium may fetch chrome:// icons for its media controls).
    assert [u for u in seen["requests"]
            if not u.startswith(("file:", "data:", "chrome:"))] == []
