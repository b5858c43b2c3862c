"""`audiogan bench {preprocess,train,sample,sweep}`: each writes JSON under results/bench/."""

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
