"""`python -m audiogan.quality run|report`: see `audiogan.quality.plan`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from audiogan.quality.plan import BASE, plan
from audiogan.quality.report import write_report
from audiogan.stages import run_stages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiogan.quality")
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--work", required=True)
    r.add_argument("--fsdd", required=True)
    r.add_argument("--maestro", required=True)
    r.add_argument("--phase", choices=["rows", "seeds", "long", "samples"], default="rows")
    r.add_argument("--only", choices=list(BASE), action="append")
    r.add_argument("--concurrency", type=int, default=2)
    rep = sub.add_parser("report")
    rep.add_argument("--work", required=True)
    rep.add_argument("--out", default="results/quality")
    args = parser.parse_args(argv)
    if args.what == "run":
        work = os.path.abspath(args.work)
        os.makedirs(work, exist_ok=True)
        stages = plan(work, os.path.abspath(args.fsdd), os.path.abspath(args.maestro),
                      args.phase, args.only or list(BASE))
        run_stages(stages, os.path.join(work, ".stages.json"), concurrency=args.concurrency,
                   python=sys.executable)
        return 0
    print(write_report(os.path.abspath(args.work), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
