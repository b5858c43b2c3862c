"""The `audiogan` command line: argument parsing and dispatch, nothing else.

Each command's work lives in its own module, imported only when that command runs, so
`audiogan --help` is fast and a command shows in it once its module exists. A user
mistake raises `UserError`: one line on stderr, exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, Sequence

from audiogan import __version__
from audiogan.cluster.hooks import FaultHooks
from audiogan.config import DataConfig
from audiogan.errors import UserError

log = logging.getLogger("audiogan")

EXAMPLES = {
    "data": "audiogan data demo --out data/demo\n"
            "  audiogan data download maestro --out data/raw",
    "preprocess": "audiogan preprocess maestro --source data/raw/maestro-v3.0.0 --out data/maestro",
    "train": "audiogan train pianogan-cpu --data data/maestro --out runs/piano --set optim.lr_g=2e-4\n"
             "  audiogan train --config best/piano/best_config.yaml --data data/maestro --out runs/again",
    "sweep": "audiogan sweep sweeps/pianogan-cpu.yaml --data data/maestro",
    "best": "audiogan best sweep_runs/pianogan-cpu --out best/piano [--final] [--pareto]",
    "status": "audiogan status sweep_runs/pianogan-cpu [--watch 10]",
    "sample": "audiogan sample best/piano/checkpoint --out samples/piano --seeds 0-15",
    "evaluate": "audiogan evaluate best/piano/checkpoint --data data/maestro --n 2000",
    "invert": "audiogan invert runs/digits --audio my_seven.wav --out inverted/seven",
    "classifier": "audiogan classifier train --data data/sc09 --out data/sc09/classifier",
    "bench": "audiogan bench train",
}

# command -> module whose `cli_main(args)` runs it (imported only when that command runs).
MODULES = {
    "data demo": "audiogan.data.demo",
    "data download": "audiogan.data.download",
    "preprocess": "audiogan.data.preprocess",
    "train": "audiogan.train.run",
    "sweep": "audiogan.sweep",
    "best": "audiogan.sweep.best",
    "status": "audiogan.sweep.status",
    "sample": "audiogan.sample",
    "evaluate": "audiogan.evaluate",
    "invert": "audiogan.invert",
    "classifier train": "audiogan.classifier_cli",
    "classifier evaluate": "audiogan.classifier_cli",
    "bench": "audiogan.bench",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UserError(f"{self.prog}: {message}")


def _epilog(name: str) -> str:
    return f"example:\n  {EXAMPLES[name]}"


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="dotted config override, repeatable (e.g. optim.lr_g=2e-4)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="audiogan", formatter_class=fmt,
                     description="Train audio GANs (PianoGAN, SpectoGAN) with WGAN-GP on Ray, "
                                 "and keep them out of mode collapse.",
                     epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()))
    parser.add_argument("--version", action="version", version=f"audiogan {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, formatter_class=fmt,
                              epilog=_epilog(name.split()[0]), **kw)

    def actions(group: str, help_text: str) -> Callable[[str, str], argparse.ArgumentParser]:
        """A command with actions (`audiogan data demo`): returns an adder of actions."""
        asub = add(group, help_text).add_subparsers(dest=f"{group}_command", metavar="ACTION",
                                                    parser_class=_Parser)
        asub.required = True
        return lambda name, text: asub.add_parser(name, help=text, formatter_class=fmt,
                                                  epilog=_epilog(group))

    data_action = actions("data", "make or fetch raw datasets")
    q = data_action("demo", "small demo datasets, offline, from pip packages")
    q.add_argument("--out", required=True)
    q.add_argument("--n-midi", type=int, default=None, help="piano pieces to convert")
    q.add_argument("--n-per-digit", type=int, default=None, help="clips per digit")
    q.add_argument("--seed", type=int, default=0)
    q = data_action("download", "fetch and verify an official archive")
    q.add_argument("dataset", choices=["maestro", "sc09"])
    q.add_argument("--out", required=True)
    q.add_argument("--url", default=None, help="mirror URL instead of the official one")
    q.add_argument("--timeout", type=float, default=30.0, help="seconds per request")

    p = add("preprocess", "Ray Data pipeline: raw dataset -> training shards")
    p.add_argument("kind", choices=["maestro", "sc09", "fsdd", "midi-dir", "wav-dir"])
    p.add_argument("--source", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--hop", type=int, default=64)
    p.add_argument("--apply-pedal", action="store_true")
    p.add_argument("--representation", choices=["log_magnitude", "complex"], default=None,
                   help="audio: log-magnitude spectrograms [128, 128] (default) or the "
                        "invertible real/imaginary STFT [2, 128, 128]")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--address", default=None, help="Ray cluster address (default: local)")

    p = add("train", "train a preset (or a config file) with Ray Train (DDP)")
    p.add_argument("preset", nargs="?", default=None,
                   help="a preset; or give --config FILE instead")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a resolved config file (a run's config.yaml, a sweep's "
                        "best_config.yaml): trains exactly that config, --set on top")
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=None)
    _add_overrides(p)
    p.add_argument("--workers", type=int, default=None, help="= compute.workers")
    p.add_argument("--gpu", action="store_true", help="= compute.gpu=true")
    p.add_argument("--total-steps", type=int, default=None, help="= train.total_steps")
    p.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")

    p = add("sweep", "Ray Tune + Optuna hyperparameter sweep")
    p.add_argument("spec")
    p.add_argument("--data", default=None)
    p.add_argument("--address", default=None)
    p.add_argument("--storage", default=None, help="path or URI for sweep state")
    p.add_argument("--name", default=None, help="sweep name (default: the YAML's stem)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--dry-run", action="store_true")

    p = add("best", "best checkpoint, leaderboard and plots of a sweep")
    p.add_argument("sweep")
    p.add_argument("--out", default=None, help="where to write (required unless --final alone)")
    p.add_argument("--metric", default=None,
                   help="rank by this one metric's trial-time values instead of the sweep's "
                        "objectives and final stage")
    p.add_argument("--mode", choices=["min", "max"], default=None)
    p.add_argument("--final", action="store_true",
                   help="run (or finish) the sweep's final stage first: final evaluation "
                        "with intervals and seed replicates")
    p.add_argument("--pareto", action="store_true",
                   help="also copy every Pareto-optimal checkpoint to OUT/pareto/")
    p.add_argument("--data", default=None, help="--final: the dataset (default: the sweep's)")
    p.add_argument("--address", default=None, help="--final: Ray cluster address")
    p.add_argument("--page-seeds", type=int, default=4, metavar="N",
                   help="samples per trial on the sweep page, OUT/page/index.html (seeds "
                        "0..N-1; 0: none)")

    p = add("status", "a sweep's trials: state, critic steps, objectives, hyperparameters "
                      "(read from its directory; no Ray)")
    p.add_argument("sweep")
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="print the table again every SECONDS until the sweep is done")

    p = add("sample", "generate audio from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default=None, help="e.g. 0-15 or 3,7,9")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--interpolate", nargs=2, type=int, metavar=("A", "B"), default=None)
    p.add_argument("--latents", nargs="+", default=None, metavar="Z.npy",
                   help="sample these z (e.g. from `audiogan invert`): [latent_dim] or "
                        "[k, latent_dim] each")
    p.add_argument("--interpolate-latents", nargs=2, default=None, metavar=("A.npy", "B.npy"),
                   help="walk from one stored z to another in --steps points")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--labels", default=None,
                   help="conditional models: classes to sample, e.g. 0-9 (digits), "
                        "'Chopin,Bach' or 0,2 (composers), all; every seed for every label")

    p = add("evaluate", "mode-collapse metrics of a checkpoint, real floor beside")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--out", default=None, help="write metrics JSON here")
    p.add_argument("--ndb-k", type=int, default=None, help="= metrics.ndb_k (NDB bins)")
    p.add_argument("--eval-seed", type=int, default=None,
                   help="= metrics.eval_seed: samples use seeds S .. S+n-1")
    p.add_argument("--recon", type=int, default=None, metavar="N",
                   help="also eval/recon: invert N real test clips (minutes; final "
                        "evaluations only)")
    p.add_argument("--recon-steps", type=int, default=None, help="inversion steps (300)")
    p.add_argument("--recon-restarts", type=int, default=None, help="inversion restarts (4)")
    p.add_argument("--bootstrap", type=int, default=None, metavar="B",
                   help="a sweep's final evaluation instead: every metric with a bootstrap "
                        "interval from B draws, the real floor at a matched count (n 2000, "
                        "K 50 and seeds from 2,000,000 unless given)")

    p = add("invert", "latents of real recordings (GAN inversion)")
    p.add_argument("checkpoint", help="a checkpoint or a run directory (its latest)")
    p.add_argument("--audio", nargs="+", default=None, metavar="WAV",
                   help="SpectoGAN: recordings, preprocessed as the dataset's")
    p.add_argument("--midi", nargs="+", default=None, metavar="MID",
                   help="PianoGAN: MIDI files, inverted per window of data.window notes")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per restart")
    p.add_argument("--restarts", type=int, default=4, help="starting points; the best kept")
    p.add_argument("--label", default=None,
                   help="conditional models: the class (default: the digit classifier's "
                        "prediction, else the best of every class)")
    p.add_argument("--data", default=None,
                   help="the checkpoint's dataset, where its classifier/ is (when "
                        "metrics.classifier is not set)")
    p.add_argument("--seed", type=int, default=0, help="restart r starts at seed + r's z")

    classifier_action = actions("classifier",
                                "the digit classifier behind eval/is and eval/cond_acc")
    train_q = q = classifier_action("train", "train on a preprocessed spectrogram dataset")
    q.add_argument("--data", required=True)
    q.add_argument("--out", default=None)
    q.add_argument("--epochs", type=int, default=None)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--leave-one-speaker-out", action="store_true",
                   help="also train one classifier per held-out speaker and report each")
    q = classifier_action("evaluate", "test accuracy of a saved classifier, clean and after "
                          "the audio round trip")
    q.add_argument("--classifier", required=True, help="directory with classifier.pt")
    q.add_argument("--data", required=True)
    for q in (train_q, q):
        q.add_argument("--griffin-lim-iters", type=int, default=16,
                       help="Griffin-Lim iterations of the round trip (data.griffin_lim_iters)")
        q.add_argument("--griffin-lim-momentum", type=float,
                       default=DataConfig().griffin_lim_momentum,
                       help="Griffin-Lim momentum of the round trip (data.griffin_lim_momentum)")
        q.add_argument("--threads", type=int, default=1, help="torch threads")
    p = add("bench", "benchmarks, JSON into results/bench/")
    p.add_argument("what", choices=["preprocess", "train", "sample", "sweep"])
    p.add_argument("--out", default="results/bench")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    p.add_argument("--source", default=None)
    p.add_argument("--parts", default=None,
                   help="bench train only: comma list of "
                        "overhead,full,gap,background,reporting,precision")
    p.add_argument("--presets", default=None,
                   help="bench train --parts full only: comma list of spectogan,pianogan "
                        "(the others' rows stay in train.json)")
    p.add_argument("--pairs", type=int, default=None,
                   help="bench train --parts full only: plain/product pairs per preset "
                        "(even; default 2 for spectogan, 4 for pianogan)")
    return parser


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int | None]:
    name = args.command
    if name == "data":
        name = f"data {args.data_command}"
    elif name == "classifier":
        name = f"classifier {args.classifier_command}"
    if name == "train" and args.dry_run:
        return _train_dry_run
    module = importlib.import_module(MODULES[name])
    return module.cli_main


def _train_dry_run(args: argparse.Namespace) -> int:
    from audiogan.builders import train_config_from_args

    cfg = train_config_from_args(args)
    sys.stdout.write(cfg.to_yaml())
    return 0


def _setup_logging(verbosity: int) -> None:
    level = logging.INFO - 10 * verbosity
    logging.basicConfig(level=max(logging.DEBUG, min(logging.ERROR, level)),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _setup_logging(args.verbose - args.quiet)
        if not args.command:
            parser.print_help()
            return 2
        # Fault hooks for tests that run a real process: read here, once (cluster/hooks.py).
        args.fault_hooks = FaultHooks.from_env()
        return int(_handler(args)(args) or 0)
    except UserError as exc:
        print(f"audiogan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audiogan: interrupted", file=sys.stderr)
        return 130
