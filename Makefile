# Two entry points: `make run` (set up, run the pipeline on the defaults) and `make test`.
# Setup is cache-friendly: it reinstalls only when pyproject.toml or native/ changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-done
NATIVE := $(wildcard native/*.cpp native/*.hpp native/*.h native/CMakeLists.txt native/third_party/*)

.PHONY: setup test run compare bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# build requirements first: the editable install builds without isolation (fast, incremental)
	$(PIP) install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
	# tinysoundfont renders SoundFonts; its PyAudio dependency is for live playback only and does not build here
	$(PIP) install --quiet --no-deps "tinysoundfont==0.3.7"
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	touch $(STAMP)

test: setup
	$(VENV)/bin/pytest -q

run: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	@echo
	@$(PY) -m trainer.report metrics
	@echo
	@echo "model:     models/model.keras"
	@echo "metrics:   metrics/fit.json metrics/eval.json (all of it: .venv/bin/dvc metrics show; curves: .venv/bin/dvc plots show)"
	@echo "pictures:  metrics/eval_roll.png (reference above, transcription below)"
	@echo "try:       .venv/bin/trainer infer $$(ls data/eval/*.wav | head -n 1) --out-dir out/"

# the peer for benchmarks/compare_basic_pitch.py; basic-pitch pins old TF/CoreML, so it goes in without deps
compare: setup
	$(PIP) install --quiet --no-build-isolation -e ".[compare]"
	$(PIP) install --quiet --no-deps "basic-pitch==0.4.0"

bench: setup
	$(PY) benchmarks/synth_throughput.py
	$(PY) benchmarks/input_pipeline.py

clean:
	rm -rf build $(VENV)
