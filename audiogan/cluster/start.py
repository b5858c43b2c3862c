"""One way every command gets its Ray: join a cluster, or start an embedded local one.

`--address`, or `RAY_ADDRESS` (set by `ray job submit`), joins that cluster. Otherwise a
fresh embedded Ray starts (`address="local"`: never someone's `ray start` cluster by
accident) with the dashboard on 127.0.0.1 only; Ray 2.60's token auth stays on. An
already-initialised Ray (tests, a caller that started it) is used as it is. `ray_session`
shuts down only a Ray it started itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import tempfile
from typing import Iterator

log = logging.getLogger(__name__)
DEFAULT_DASHBOARD_PORT = 8265


def pin_dashboard_port() -> int:
    """A free port for the dashboard, exported as RAY_API_SERVER_ADDRESS before Ray starts.

    Train V2's PlacementGroupCleaner is what frees a TorchTrainer's placement group when
    Tune stops a multi-worker trial (ASHA) and the trial's controller dies with it. It asks
    the State API whether the controller is alive, and that API auto-detects "the" local
    Ray: with a second Ray instance on the machine it raises, the cleaner's thread dies and
    the group keeps its CPUs forever (the next trial waits for them). Ray processes inherit
    this variable, so every State API call in this cluster goes to its own dashboard.
    Call it inside `dashboard_port_lock` and start Ray before leaving it.
    """
    port = 0
    for candidate in (DEFAULT_DASHBOARD_PORT, 0):  # Ray's usual port when it is free
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = s.getsockname()[1]
            break
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
    return port


@contextlib.contextmanager
def dashboard_port_lock() -> Iterator[None]:
    """Hold a machine-wide lock from choosing the dashboard port until Ray has bound it.

    The port is found free by binding and releasing it, and Ray's dashboard binds it
    seconds later: two runs started in the same second both chose 8265 and one Ray failed
    to start ("address already in use"). `ray.init` returns only once its dashboard has
    published its address, so a lock held across both closes that window.
    """
    from audiogan.storage import exclusive_lock

    path = os.path.join(tempfile.gettempdir(), f"audiogan-ray-start-{os.getuid()}.lock")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(path))
        except OSError as exc:  # an unwritable temp dir: start unlocked, as before
            log.warning("no dashboard port lock (%s); runs started at once may collide", exc)
        yield


@dataclasses.dataclass(frozen=True)
class RayHandle:
    started: bool   # this process started an embedded Ray (and shuts it down)
    local: bool     # an embedded single-machine Ray, not a joined cluster
    cpus: float     # the cluster's CPUs


def start_ray(address: str | None = None, num_cpus: int | None = None, *,
              dashboard: bool = True, log_to_driver: bool = True) -> RayHandle:
    """Initialise Ray unless it already is (see the module docstring). `dashboard=False`
    only for work without Ray Train (preprocessing): Train's placement-group cleaner asks
    the dashboard's State API about its runs, and with none of our own it may ask another
    Ray on the machine (`pin_dashboard_port`)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        _init(address, num_cpus, dashboard, log_to_driver)
        started = not address
    else:
        started = False
    return RayHandle(started=started, local=not address,
                     cpus=float(ray.cluster_resources().get("CPU", 1)))


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, *,
                dashboard: bool = True, log_to_driver: bool = True) -> Iterator[RayHandle]:
    """`start_ray`, then `ray.shutdown()` on exit when this call started it."""
    import ray

    handle = start_ray(address, num_cpus, dashboard=dashboard, log_to_driver=log_to_driver)
    try:
        yield handle
    finally:
        if handle.started:
            ray.shutdown()


def _init(address: str | None, num_cpus: int | None, dashboard: bool, log_to_driver: bool
          ) -> None:
    import ray

    # Train runs show in the dashboard only with state tracking on.
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
        return
    # Ray nices its workers to 15 by default; on a shared machine that starves them next to
    # nice-0 processes (measured: 0.48x Pool(2) on maestro-mini under load).
    os.environ.setdefault("RAY_worker_niceness", "0")
    with dashboard_port_lock():
        extra = {"dashboard_port": pin_dashboard_port()} if dashboard else {}
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
                 include_dashboard=dashboard, dashboard_host="127.0.0.1", **extra,
                 log_to_driver=log_to_driver, configure_logging=False)
    if dashboard:
        log.info("Ray dashboard: %s (token: ~/.ray/auth_token)", os.environ["RAY_API_SERVER_ADDRESS"])
