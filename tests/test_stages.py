"""The resumable stage runner behind `make demo` and the experiment plans."""

from __future__ import annotations

import os
import stat

import pytest

from audiogan.stages import Stage, run_stages


@pytest.fixture
def fake_python(tmp_path):
    """Stands in for `python -m audiogan ARGV`: ARGV = (touch, MARKER) or (fail,)."""
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\nshift 2\n[ "$1" = fail ] && exit 3\n'
                      'echo "$2" >> "$(dirname "$2")/order"\nsleep 0.3\ntouch "$2"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _plan(root):
    m = {n: str(root / n) for n in "abc"}
    return [Stage("a", ("touch", m["a"]), m["a"]),
            Stage("b", ("touch", m["b"]), m["b"], after=("a",)),
            Stage("c", ("touch", m["c"]), m["c"])]


def test_stages_run_in_order_concurrently_and_skip_when_done(tmp_path, fake_python):
    stamps = str(tmp_path / "stamps.json")
    seconds = run_stages(_plan(tmp_path), stamps, concurrency=2, python=fake_python)
    assert all(os.path.exists(tmp_path / n) for n in "abc")
    order = (tmp_path / "order").read_text().split()
    assert order.index(str(tmp_path / "a")) < order.index(str(tmp_path / "b"))
    assert set(order[:2]) == {str(tmp_path / "a"), str(tmp_path / "c")}  # a and c together
    assert all(s > 0 for s in seconds.values())
    again = run_stages(_plan(tmp_path), stamps, concurrency=2, python=fake_python)
    assert again == {"a": 0.0, "b": 0.0, "c": 0.0}
    # A changed command reruns its stage and everything after it, nothing else.
    plan = _plan(tmp_path)
    plan[0] = Stage("a", ("touch", str(tmp_path / "a"), "x"), str(tmp_path / "a"))
    rerun = run_stages(plan, stamps, python=fake_python)
    assert rerun["a"] > 0 and rerun["b"] > 0 and rerun["c"] == 0.0


def test_a_failed_stage_stops_the_plan_with_one_line(tmp_path, fake_python):
    plan = [Stage("bad", ("fail",), str(tmp_path / "never"))]
    with pytest.raises(SystemExit, match="stage 'bad' failed"):
        run_stages(plan, str(tmp_path / "s.json"), python=fake_python)


def test_two_plans_sharing_a_stamp_file_keep_each_others_stamps(tmp_path, fake_python):
    """Both read the (empty) file at start; whichever finishes last used to write its own
    view over the other's stamp, so that stage ran again next time."""
    import json
    import threading

    stamps = str(tmp_path / "stamps.json")
    plan = _plan(tmp_path)
    other = threading.Thread(target=run_stages, args=([plan[0]], stamps),
                             kwargs={"python": fake_python})
    other.start()
    run_stages([plan[2]], stamps, python=fake_python)
    other.join()
    assert set(json.loads(open(stamps).read())) == {"a", "c"}
    assert run_stages([plan[0], plan[2]], stamps, python=fake_python) == {"a": 0.0, "c": 0.0}


def test_a_stage_marked_alone_runs_with_nothing_beside_it(tmp_path):
    # Stand-in logging when each stage starts and ends: a and b may overlap; c (alone)
    # starts after both ended and d, though free to start, waits until c has ended.
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\nshift 2\nlog="$(dirname "$2")/events"\n'
                      'echo "start $2" >> "$log"\nsleep 0.4\necho "end $2" >> "$log"\n'
                      'touch "$2"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    m = {n: str(tmp_path / n) for n in "abcd"}
    plan = [Stage("a", ("touch", m["a"]), m["a"]), Stage("b", ("touch", m["b"]), m["b"]),
            Stage("c", ("touch", m["c"]), m["c"], alone=True),
            Stage("d", ("touch", m["d"]), m["d"])]
    run_stages(plan, str(tmp_path / "s.json"), concurrency=2, python=str(script))
    events = (tmp_path / "events").read_text().split("\n")[:-1]
    assert set(events[:2]) == {f"start {m['a']}", f"start {m['b']}"}   # a and b together
    assert events[4:] == [f"start {m['c']}", f"end {m['c']}", f"start {m['d']}",
                          f"end {m['d']}"]


def test_an_edited_input_file_reruns_its_stage(tmp_path, fake_python):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("num_samples: 1\n")
    plan = [Stage("a", ("touch", str(tmp_path / "a"), str(spec)), str(tmp_path / "a"),
                  inputs=(str(spec),))]
    stamps = str(tmp_path / "s.json")
    run_stages(plan, stamps, python=fake_python)
    assert run_stages(plan, stamps, python=fake_python) == {"a": 0.0}
    spec.write_text("num_samples: 2\n")
    assert run_stages(plan, stamps, python=fake_python)["a"] > 0


def test_demo_sweep_stage_resumes_when_interrupted_and_restarts_when_finished(tmp_path):
    from audiogan import demo_run
    from audiogan.sweep.keys import TUNER_STATE

    stage = next(s for s in demo_run.stages(str(tmp_path)) if s.name == "sweep-digits")
    sweep_dir = os.path.dirname(stage.done_marker)
    os.makedirs(sweep_dir)
    open(os.path.join(sweep_dir, TUNER_STATE), "w").close()
    assert demo_run._argv(stage)[-1] == "--resume"   # interrupted: continue it
    open(stage.done_marker, "w").close()             # finished, yet asked to run again
    assert "--resume" not in demo_run._argv(stage) and not os.path.exists(sweep_dir)
    assert stage.inputs == ("sweeps/spectogan-demo.yaml",)
