"""The quality plan (issue 16): each ablation row adds one step to the row above, the
families interleave, and each trained run's pictures use the same seeds."""

from __future__ import annotations

import json
import os

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import yaml

from audiogan.config import resolve
from audiogan.quality.plan import BASE, FAMILY_ROWS, PAPER, plan, row_overrides
from audiogan.quality import report
from audiogan.quality.report import write_report


def test_each_row_adds_its_step_to_every_step_above():
    for family, names in FAMILY_ROWS.items():
        rows = [row_overrides(family, r) for r in names]
        assert rows[1]["model.d"] == 2 * rows[0]["model.d"]
        assert rows[1]["model.conditional"] is False and rows[2]["model.conditional"] is True
        for above, below in zip(rows, rows[1:]):
            for key, value in above.items():  # nothing above is undone (width, R1 and the
                # steps that replace the paper's written-out values excepted)
                if key not in ("model.d", "train.eval_every", *PAPER) or (
                        key in PAPER and value != PAPER[key]):
                    assert below[key] == value, key
        r1 = rows[names.index("r1")]
        assert r1["loss.kind"] == "r1" and r1["loss.n_critic"] == 1
        assert r1["train.eval_every"] == 4 * rows[0]["train.eval_every"]  # same wall spacing
    assert row_overrides("spectogan", "paper")["model.d"] == 4
    assert row_overrides("pianogan", "augment")["train.augment"] == "shift,cutout"
    assert row_overrides("pianogan", "onehot")["model.pitch"] == "onehot"
    with pytest.raises(ValueError, match="no ablation row 'onehot'"):
        row_overrides("spectogan", "onehot")


def test_the_paper_row_is_the_papers_recipe_whatever_the_preset_now_is():
    for family in ("spectogan", "pianogan"):
        cfg = resolve(BASE[family][0], row_overrides(family, "paper"))
        assert (cfg.loss.kind, cfg.loss.n_critic, cfg.model.upsample) == ("wgan-gp", 5, "transpose")
        assert (cfg.train.ema_decay, cfg.train.augment, cfg.optim.beta1) == (0.0, "", 0.5)
        assert not cfg.model.conditional


def test_rows_interleave_families_and_samples_follow_the_config(tmp_path):
    names = [s.name for s in plan(str(tmp_path), "fsdd", "maestro", "rows",
                                  ["spectogan", "pianogan"]) if s.name.startswith("train-")]
    assert names[:4] == ["train-spectogan-paper", "train-pianogan-paper",
                         "train-spectogan-width", "train-pianogan-width"]
    for name, conditional in (("spectogan-cond", True), ("spectogan-paper", False),
                              ("pianogan-cond", True), ("spectogan-width", None)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        if conditional is not None:  # a run still training has no summary: no pictures yet
            (run / "summary.json").write_text("{}")
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"conditional": bool(conditional)}}))
    stages = {s.name: s.argv for s in plan(str(tmp_path), "fsdd", "maestro", "samples",
                                           ["spectogan"]) if s.name.startswith("samples-")}
    assert set(stages) == {"samples-spectogan-cond", "samples-spectogan-paper",
                           "samples-pianogan-cond"}
    assert stages["samples-spectogan-cond"][-4:] == ("--seeds", "0-2", "--labels", "0-9")
    assert stages["samples-spectogan-paper"][-2:] == ("--seeds", "0-11")
    assert stages["samples-pianogan-cond"][-2:] == ("--seeds", "0-1")
    assert all(os.path.basename(a[a.index("--out") + 1]) == "samples" for a in stages.values())


def test_samples_phase_commits_the_long_runs_samples_for_every_class(tmp_path):
    for name in ("spectogan-long", "pianogan-long", "spectogan-long-uncond"):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "summary.json").write_text("{}")
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"conditional": True}}))
    stages = {s.name: s.argv for s in plan(str(tmp_path), "fsdd", "maestro", "samples",
                                           ["spectogan"]) if s.name.startswith("committed-")}
    assert set(stages) == {"committed-spectogan-long", "committed-pianogan-long"}
    assert all(a[-4:] == ("--seeds", "0-9", "--labels", "all") for a in stages.values())


def _final(run, metrics, floor):
    run.mkdir(parents=True, exist_ok=True)
    (run / "final.json").write_text(json.dumps(
        {"metrics": metrics, "floor": floor, "checkpoint": str(run / "none"), "step": 7}))


def test_report_judges_the_long_runs_and_copies_the_committed_samples(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    runs = work / "runs"
    _final(runs / "spectogan-long", {"eval/is": 3.0, "eval/cond_acc": 0.85,
                                     "eval/cond_acc/0": 0.9, "eval/cond_acc/1": 0.5,
                                     "eval/ndb": 0.3}, {"eval/is": 6.0, "eval/ndb": 0.1})
    _final(runs / "spectogan-long-uncond", {"eval/is": 4.2, "eval/ndb": 0.3},
           {"eval/is": 6.0, "eval/ndb": 0.1})
    _final(runs / "pianogan-long", {"eval/ndb": 0.6, "eval/note_overlap": 0.9,
                                    "eval/pc_entropy": 3.15},
           {"eval/ndb": 0.48, "eval/note_overlap": 0.92, "eval/pc_entropy": 3.10})
    digits = runs / "spectogan-long" / "committed"
    digits.mkdir()
    names = [f"seed_{s:04d}_{d}" for d in (3, 4) for s in (0, 1)]
    for n in names:
        sf.write(digits / f"{n}.wav", np.zeros(16000, np.float32), 16000)
    (digits / "spectrograms.png").write_bytes(b"\x89PNG small")
    (digits / "samples.json").write_text(json.dumps(
        {"names": names, "labels": ["3", "3", "4", "4"], "seeds": [0, 1], "step": 9}))
    piano = runs / "pianogan-long" / "committed"
    piano.mkdir()
    names = [f"seed_{s:04d}_Frederic-Chopin" for s in range(3)]
    for s, n in enumerate(names):
        sf.write(piano / f"{n}.wav", np.ones(16000 * 10, np.float32) * 0.1, 16000)
        midi = pretty_midi.PrettyMIDI()
        midi.instruments.append(pretty_midi.Instrument(0))
        midi.instruments[0].notes.append(pretty_midi.Note(80, 60 + s, 0.5, 1.5))  # ends at 1.5
        midi.write(str(piano / f"{n}.mid"))
        (piano / f"{n}.png").write_bytes(b"\x89PNG")
    (piano / "samples.json").write_text(json.dumps(
        {"names": names, "labels": ["Frédéric Chopin"] * 3, "seeds": [0, 1, 2], "step": 5}))

    with open(write_report(str(work), str(out))) as f:
        text = f.read()

    assert "| spectogan-long-uncond | IS / real IS | 0.700 | >= 0.66 | met |" in text
    assert "| spectogan-long | lowest digit's cond_acc | 0.500 | >= 0.6 | missed by 0.100 |" in text
    assert "| pianogan-long | NDB - floor | 0.120 | <= 0.1 | missed by 0.020 |" in text
    assert "| pianogan-long | pc entropy: distance to real (bits) | 0.050 | <= 0.1 | met |" in text
    for digit in ("3", "4"):  # every label's seeds, joined in seed order with a gap
        assert os.listdir(out / "samples" / "digits" / digit) == ["seeds_0-1.wav"]
        audio, rate = sf.read(out / "samples" / "digits" / digit / "seeds_0-1.wav")
        assert len(audio) == 2 * 16000 + int(report.DIGIT_GAP_S * rate)
    assert (out / "samples" / "digits" / "grid.png").exists()
    chopin = out / "samples" / "piano" / "Frederic-Chopin"
    assert sorted(os.listdir(chopin)) == sorted(
        [f"seed_000{s}.png" for s in range(3)] + ["seeds_0-2.mid", "seeds_0-1.wav"])
    audio, rate = sf.read(chopin / "seeds_0-1.wav")   # two phrases cut to 8 s, one gap
    assert len(audio) == 2 * 8 * rate + int(report.PIANO_GAP_S * rate)
    notes = pretty_midi.PrettyMIDI(str(chopin / "seeds_0-2.mid")).instruments[0].notes
    gap = 1.5 + report.PIANO_GAP_S   # each phrase starts a gap after the last one's end
    assert [n.pitch for n in notes] == [60, 61, 62]
    assert [n.start for n in notes] == pytest.approx([0.5, 0.5 + gap, 0.5 + 2 * gap], abs=1e-2)
