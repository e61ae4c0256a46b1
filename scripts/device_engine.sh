#!/usr/bin/env bash
# Issue 33 on a GPU machine: the data stage of configs/qwen3-0.6b-honesty.toml (1000 sampled
# pairs per side, up to 256 new tokens) with transformers, then with a vLLM server, back to
# back; prints each stage's seconds (the server's start apart) and the ratio.
# Needs Qwen/Qwen3-0.6B in the HF cache (HF_HUB_OFFLINE=1 below) and a python with vllm for
# the GPU (`pip install vllm` in its own venv): VLLM_PYTHON=/path/to/venv/bin/python.
#   VLLM_PYTHON=... bash scripts/device_engine.sh [OUT]     # run folders go to OUT (runs/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs}/device-engine"
export WEIGHTSTEER_VLLM_PYTHON="${VLLM_PYTHON:?set VLLM_PYTHON to a python with vllm}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
timeout 580 .venv/bin/python - "$out" <<'PY'
import json, sys, time
from pathlib import Path
from weightsteer.cli.app import start_run, with_engine
from weightsteer.pipeline import load_config, run_stages

out, seconds = Path(sys.argv[1]), {}
for engine in ("hf", "vllm"):
    cfg = with_engine(load_config("configs/qwen3-0.6b-honesty.toml"), engine, None)
    ctx = start_run(cfg, f"qwen3-0.6b-{engine}", out)
    t0 = time.perf_counter()
    run_stages(ctx, ["data"])  # the vLLM server starts inside the stage and stops after it
    seconds[engine] = time.perf_counter() - t0
    counts = json.loads((ctx.run.root / "manifest.json").read_text())["counts"]["data"]
    print(f"{engine}: data stage {seconds[engine]:.0f} s, {counts}", flush=True)
log = (out / "qwen3-0.6b-vllm" / "engine.log").read_text()
print(f"vLLM over transformers: {seconds['hf'] / seconds['vllm']:.2f}x (the vLLM stage includes "
      f"its server's start; engine.log has the start-up lines, {len(log.splitlines())} lines)")
PY
