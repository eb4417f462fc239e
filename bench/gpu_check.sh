#!/usr/bin/env bash
# GPU check: QLoRA GRPO steps (r1cli's loader, R1GRPOTrainer, sampler, rewards) on a randomly initialised
# Qwen2.5-1.5B-architecture model, G=8, 512 new tokens (EOS off), 4 optimizer steps; prints ONE JSON line on stdout
# with peak VRAM and step time (see bench/gpu_check.py). Nothing is downloaded. Never required by the tests (they
# run `bench/gpu_check.py --smoke` on CPU).
#
# Sizing for one H200, an estimate (not measured): imports + random init + 3 GB safetensors write + 4-bit load
# ~1-2 min, then 4 steps of 8x512 sampled tokens at a few tens of ms per token (4-bit dequantisation, batch 8)
# ~15-30 s each. A hard `timeout 470` keeps the whole run under 8 minutes either way.
#
#   bash bench/gpu_check.sh [args for bench/gpu_check.py]   # on the GPU machine (or anywhere with CUDA)
#   bash bench/gpu_check.sh --pack                          # HERE, before: packs what the GPU image lacks
#
# Python: $PYTHON, else .venv/bin/python when it has every package, else python3. A CUDA PyTorch image usually
# lacks trl, bitsandbytes, datasets (with dill, multiprocess) and has an older transformers/peft than r1cli needs;
# `--pack` copies those packages (pure Python, plus bitsandbytes' CUDA 13 ctypes libraries, so any Python 3.10+
# on x86-64 Linux can use them) from this checkout's .venv into .whl/r1cli-gpu-site.tar.gz (.whl/ is git-ignored;
# carry it: `carry: [".whl"]`). On the GPU machine this script unpacks it into $TMPDIR/r1cli-site and puts it first
# on PYTHONPATH (a --target install rather than a venv: a venv made from the image's own venv would not see its
# torch). r1cli itself is used from src/ (PYTHONPATH), not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
NEED="import torch, transformers, peft, accelerate, trl, bitsandbytes, datasets, yaml, rich"
PACK=.whl/r1cli-gpu-site.tar.gz

if [ "${1:-}" = "--pack" ]; then
  SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  mkdir -p .whl
  items=()
  for pkg in transformers trl peft datasets dill multiprocess bitsandbytes; do
    items+=("$pkg")
    for d in "$SITE"/"$pkg"-*.dist-info; do items+=("$(basename "$d")"); done
  done
  items+=("_multiprocess")  # multiprocess's C-free helper package
  # bitsandbytes: keep the CPU and CUDA 13.x libraries only (the others are ~20 MB each)
  tar -C "$SITE" -czf "$PACK" \
    --exclude='__pycache__' --exclude='libbitsandbytes_cuda1[12]*.so' --exclude='libbitsandbytes_rocm*.so' \
    --exclude='libbitsandbytes_xpu*.so' --exclude='transformers/models/*/convert_*' \
    $(for i in "${items[@]}"; do [ -e "$SITE/$i" ] && echo "$i"; done)
  ls -la "$PACK" >&2
  exit 0
fi

PY=""
for c in "${PYTHON:-}" .venv/bin/python python3; do
  if [ -n "$c" ] && "$c" -c "$NEED" 2>/dev/null; then PY=$c; break; fi
done
if [ -z "$PY" ]; then
  PY=${PYTHON:-python3}
  if [ -f "$PACK" ]; then
    SITE_DIR="${TMPDIR:-/tmp}/r1cli-site"
    mkdir -p "$SITE_DIR" && tar -C "$SITE_DIR" -xzf "$PACK"
    export PYTHONPATH="$SITE_DIR${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c "$NEED" || { echo "gpu_check: packages missing for $PY (run 'bash bench/gpu_check.sh --pack' where .venv exists, carry .whl)" >&2; exit 3; }
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 3
exec timeout 470 "$PY" bench/gpu_check.py "$@"
