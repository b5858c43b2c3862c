"""`audiogan bench {preprocess,train,sample,sweep}`: each writes JSON under results/bench/.

Each JSON records its targets (`targets`: measured key -> '>= X', '<= X' or a phrase) beside
the measurements; `audiogan.report` reads them from there, so a target is stated once, in
the bench module that measures against it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from typing import Any

from audiogan import storage


def machine_info() -> dict[str, Any]:
    import torch

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(),
            "torch_threads": torch.get_num_threads()}


def meets(value: float, target: str) -> bool:
    """Whether `value` meets a target as the JSON records it: '>= 0.85' or '<= 5.0'."""
    op, _, bound = target.partition(" ")
    if op == ">=":
        return value >= float(bound)
    if op == "<=":
        return value <= float(bound)
    raise ValueError(f"target '{target}' is neither '>= X' nor '<= X'")


def write_result(out_dir: str, name: str, result: dict[str, Any]) -> str:
    result = {"bench": name, "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), **result}
    path = storage.join(out_dir, f"{name}.json")
    storage.write_json_atomic(path, result)
    return path


def cli_main(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"audiogan.bench.{args.what}")
    result_path = module.run(args)
    print(json.dumps(storage.read_json(result_path), indent=2))
    print(f"wrote {result_path}")
    return 0
