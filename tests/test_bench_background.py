"""`audiogan bench train --parts background`'s accounting: the CPU that Ray's processes use
beside the Train worker, and the busy-wait load that stands in for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from audiogan.bench import train_background as bg

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="Linux /proc only")


def test_background_counts_ray_and_the_driver_but_not_the_worker_nor_others():
    me = os.getpid()
    before = {me: ("python bench", 1.0), 10: ("ray::RayTrainWorker", 5.0),
              11: ("/x/ray/core/src/ray/raylet/raylet", 2.0), 12: ("sshd", 3.0)}
    after = {me: ("python bench", 1.5), 10: ("ray::RayTrainWorker", 95.0),
             11: ("/x/ray/core/src/ray/raylet/raylet", 2.5), 12: ("sshd", 9.0),
             13: ("ray::TrainController", 1.0)}  # started between the snapshots: all of it
    assert bg.ray_background_cores(before, after, 10.0) == pytest.approx((0.5 + 0.5 + 1.0) / 10)


def test_load_process_uses_its_duty_cycle_of_a_core():
    period, busy = 0.02, 0.01  # half a core
    proc = subprocess.Popen([sys.executable, "-c", bg.LOAD_SCRIPT, str(busy), str(period)])
    try:
        time.sleep(0.5)  # interpreter start-up
        before = bg.cpu_seconds()[proc.pid][1]
        time.sleep(2.0)
        used = (bg.cpu_seconds()[proc.pid][1] - before) / 2.0
    finally:
        proc.kill()
        proc.wait()
    assert 0.3 < used < 0.7, used
