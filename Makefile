# Two entry points: `make demo` (the whole job on embedded Ray) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q -e ".[demo,cloud,dashboards,browser]"
	# tinysoundfont's wheel declares pyaudio (live playback only, needs portaudio headers).
	$(PY) -m pip install -q --no-deps tinysoundfont==0.3.7
	touch $(STAMP)

install: $(STAMP)

# The browser test needs Debian's chromium and chromium-driver; without them pytest's
# summary says in one line that it skipped tests/sweep/test_watch.py, and why.
test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m audiogan.demo_run --out results/demo

clean:
	rm -rf $(VENV) .pytest_cache
