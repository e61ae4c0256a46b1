#!/usr/bin/env bash
# A reduced configs/authority-qwen.toml for one H100 in under 10 minutes (issue 32):
# one LoRA seed, 16 questions x 5 paraphrases per side, 40 vignettes per condition, four
# methods (weight, the simple prompt, two activation methods) at the seeds' 1-nat p95
# budget. The machine has no network: Qwen/Qwen3-4B must already be in its HF cache
# (HF_HUB_OFFLINE=1 below), and tiny-mfv in its datasets cache.
#   bash scripts/device_authority.sh [OUT]     # the run folder goes to OUT (default runs/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs}"
cfg="$(mktemp -d)/authority-qwen-reduced.toml"
python3 - "$cfg" <<'PY'
import re, sys
text = open("configs/authority-qwen.toml").read()
edits = {
    r'^name = .*$': 'name = "authority-qwen-reduced"',
    r'^families = .*$': 'families = ["lora"]',
    r'^seeds = .*$': 'seeds = [0]',
    r'^n_train = .*$': 'n_train = 16',
    r'^rows_per_suite = .*$': 'rows_per_suite = 40',
    r'^n_calibration = .*$': 'n_calibration = 16',
    r'^n_audit = .*$': 'n_audit = 16',
}
for pat, new in edits.items():
    text = re.sub(pat, new, text, count=1, flags=re.M)
text = re.sub(r'^methods = \[.*?\]', 'methods = ["weight", "prompt:simple", "act:mean_diff", '
              '"act:directional_ablation"]', text, count=1, flags=re.M | re.S)
open(sys.argv[1], "w").write(text)
PY
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 timeout 570 \
    .venv/bin/weightsteer run --config "$cfg" --runs-dir "$out"
