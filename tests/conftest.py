"""Shared fixtures: one short temp root for Ray, one session-scoped Ray cluster."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings

import pytest

# Ray's unix sockets must fit in 107 characters: keep its temp dir short, and ours.
_TMP_ROOT = tempfile.mkdtemp(prefix="ag-", dir="/tmp")
os.environ.setdefault("RAY_TMPDIR", _TMP_ROOT)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\..*")


@pytest.fixture(scope="session")
def ray_cluster():
    """One embedded 2-CPU Ray for the whole session (never `ray stop`: other clusters may run)."""
    import ray

    if not ray.is_initialized():
        # The dashboard stays on: Train V2's PlacementGroupCleaner asks the State API whether
        # a controller died, and without it a TorchTrainer run inside a Tune trial leaves its
        # placement group behind, holding every CPU (later Train runs then wait forever).
        # The port is pinned for the same reason (see cluster.start.pin_dashboard_port).
        from audiogan.cluster.start import dashboard_port_lock, pin_dashboard_port
        from tests.cluster.s3_server import S3_ENV

        with dashboard_port_lock():
            ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                     dashboard_port=pin_dashboard_port(),
                     _temp_dir=os.path.join(_TMP_ROOT, "ray"), log_to_driver=False,
                     configure_logging=False,
                     # The local S3 server's dummy credentials, in every worker whenever
                     # this Ray starts (tests/cluster's moto fixture may start after it).
                     runtime_env={"env_vars": dict(S3_ENV)})
    yield ray
    ray.shutdown()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP_ROOT, ignore_errors=True)
