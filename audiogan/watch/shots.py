"""Screenshots of what watching a sweep looks like (the README's pictures).

    python -m audiogan.watch.shots --out results/watch \\
        --sweep sweep_runs/NAME --page best/NAME/page/index.html \\
        [--ray sweep=http://127.0.0.1:PORT] [--ray train=http://127.0.0.1:PORT2]

`--sweep`: TensorBoard (Time Series, Audio, Images) and optuna-dashboard, each started here
on a free loopback port and stopped afterwards. `--page`: the sweep page from disk.
`--ray LABEL=URL` (repeatable): a live Ray dashboard's Jobs, Actors and Cluster pages
(the token as the Ray CLI finds it). Each page is shot once it shows what it is for, as
a small PNG (960 pixels wide, a 64-colour palette). Needs Debian's chromium and
chromium-driver and the `browser` extra.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import urllib.parse
from typing import Callable

from audiogan.errors import UserError
from audiogan.watch import pages, procs
from audiogan.watch.browser import Browser, unavailable


def _shoot(b: Browser, out: str, name: str, show: Callable[[], object]) -> str:
    show()
    path = b.screenshot(os.path.join(out, f"{name}.png"))
    print(f"{path}  ({os.path.getsize(path) // 1024} KiB)")
    return path


def _ray(b: Browser, out: str, label: str, url: str) -> None:
    _shoot(b, out, f"ray-{label}-jobs", lambda: pages.ray_jobs(b, url))
    _shoot(b, out, f"ray-{label}-actors", lambda: pages.ray_actors(b, url))
    _shoot(b, out, f"ray-{label}-cluster", lambda: pages.ray_nodes(b, url))


def _sweep(b: Browser, out: str, sweep: str, work: str, marker: str) -> None:
    study = os.path.basename(sweep.rstrip("/"))
    runs = sorted({os.path.basename(os.path.dirname(p))
                   for p in glob.glob(os.path.join(sweep, "trial_*", "events.out.tfevents*"))})
    tb = procs.tensorboard(sweep, os.path.join(work, "tensorboard.log"), marker)
    od = procs.optuna_dashboard(f"sqlite:///{os.path.abspath(sweep)}/optuna.db",
                                os.path.join(work, "optuna-dashboard.log"), marker)
    try:
        tb.wait_ready()
        from audiogan.sweep.status import read_spec

        metric = read_spec(sweep).objective_list[0].metric  # the sweep's objective's card
        _shoot(b, out, "tensorboard-scalars",
               lambda: pages.tensorboard_scalars(b, tb.url, metric, runs))
        _shoot(b, out, "tensorboard-audio", lambda: pages.tensorboard_media(b, tb.url, "audio"))
        _shoot(b, out, "tensorboard-images",
               lambda: pages.tensorboard_media(b, tb.url, "images"))
        od.wait_ready()
        seen = pages.optuna_study(b, od.url, study)

        def study_page() -> None:
            b.open(seen["url"])
            b.wait("return document.querySelectorAll('.js-plotly-plot .scatterlayer .point')"
                   ".length > 0", 60)

        _shoot(b, out, "optuna-dashboard", study_page)
    finally:
        tb.stop()
        od.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiogan.watch.shots",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sweep", default=None, help="a local sweep directory")
    parser.add_argument("--page", default=None, help="the sweep page's index.html")
    parser.add_argument("--ray", action="append", default=[], metavar="LABEL=URL")
    args = parser.parse_args(argv)
    try:
        reason = unavailable()
        if reason:
            raise UserError(reason)
        if not (args.sweep or args.page or args.ray):
            raise UserError("nothing to shoot: give --sweep, --page or --ray")
        for item in args.ray:  # checked before a browser starts; the Ray token goes with
            label, _, url = item.partition("=")  # each request: loopback dashboards only
            host = urllib.parse.urlsplit(url).hostname
            if not url or host not in ("127.0.0.1", "localhost", "::1"):
                raise UserError(f"--ray {item}: expected LABEL=http://127.0.0.1:PORT (a "
                                "loopback dashboard: the Ray token is sent with each page)")
        os.makedirs(args.out, exist_ok=True)
        marker = procs.new_marker()
        with tempfile.TemporaryDirectory(prefix="audiogan-shots-") as work, Browser() as b:
            for item in args.ray:
                label, _, url = item.partition("=")
                _ray(b, args.out, label, url.rstrip("/"))
            if args.sweep:
                _sweep(b, args.out, args.sweep, work, marker)
            if args.page:
                b.driver.set_window_size(1280, 2000)
                _shoot(b, args.out, "sweep-page", lambda: pages.sweep_page(b, args.page))
        procs.stop_marked(marker)
    except UserError as exc:
        print(f"audiogan.watch.shots: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
