"""A reader of a live sweep study, as optuna-dashboard is (run as its own process):

    python -m tests.sweep.dashboard_reader sqlite:///.../optuna.db STUDY OUT.json STOP_FILE

In a loop until STOP_FILE exists: open the storage the way optuna-dashboard does, ask its
WSGI app for the study list and the study (all trials), and load the study with Optuna.
Counts the loops that read the study and every error once it exists (e.g. "database is
locked") into OUT.json."""

from __future__ import annotations

import io
import json
import os
import sys
import time
import wsgiref.util


def _get(app, path: str) -> tuple[str, bytes]:
    environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": ""}
    wsgiref.util.setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def main(url: str, name: str, out: str, stop: str) -> None:
    import optuna
    import optuna_dashboard

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    reads, errors, trials_seen, ready = 0, [], 0, False
    while not os.path.exists(stop):
        try:
            app = optuna_dashboard.wsgi(url)
            status, body = _get(app, "/api/studies")
            if not status.startswith("200"):
                raise RuntimeError(f"/api/studies: {status} {body[:200]!r}")
            studies = json.loads(body)["study_summaries"]
            for s in studies:
                status, body = _get(app, f"/api/studies/{s['study_id']}")
                if not status.startswith("200"):
                    raise RuntimeError(f"/api/studies/{s['study_id']}: {status} {body[:200]!r}")
            if any(s["study_name"] == name for s in studies):
                trials_seen = max(trials_seen, len(optuna.load_study(
                    study_name=name, storage=url).trials))
                reads, ready = reads + 1, True
        except Exception as exc:  # every failure once the study exists is what it measures
            if ready:  # before, the driver may still be creating the tables
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
        time.sleep(1.0)
    with open(out, "w") as f:
        json.dump({"reads": reads, "errors": errors, "trials_seen": trials_seen}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
