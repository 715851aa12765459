#!/usr/bin/env bash
# One command for the day a GPU is lent (one H100/H200, only torch + transformers installed, nothing carried):
# random-weight Qwen2.5-VL at 3B and 7B shapes, bf16, the paper's video shapes (16 frames of 196*28*28 px,
# a 1650-token prompt, G = 8), each size in one process of scripts/bench/gpu_step.py:
#   - generation, the default path (shared prefill) and TRL's plain batched path, G x 512 tokens;
#   - the loss pass (forward + backward, gradient checkpointing), plain vs shared-prefix, at 512 and 2048
#     completion tokens;
#   - step times, peak memory, MFU against the datasheet peak and the measured matmul peak;
# then writes everything as ONE JSON file. About 4-5 minutes on an H100; a hard limit keeps it under 8.
#
#   bash scripts/bench/gpu_check.sh                     # writes ${OUT:-outputs/bench-results}/gpu_check.json
#   bash scripts/bench/gpu_check.sh --out PATH.json
#   bash scripts/bench/gpu_check.sh --dry-run           # CPU: FLOP plan at the real shapes + the whole code
#                                                       # path on a tiny config (what the test suite runs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The project's environment when there is one (a pasted command works without activating it), else the
# interpreter on PATH (a GPU machine with only torch and transformers installed).
if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="${PYTHON:-$ROOT/.venv/bin/python}"; else PY="${PYTHON:-python}"; fi
DRY_RUN=0
OUT_JSON="${OUT:-$ROOT/outputs/bench-results}/gpu_check.json"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1; shift ;;
        --out) OUT_JSON="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo pipefail$/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (use --dry-run, --out PATH)" >&2; exit 2 ;;
    esac
done
mkdir -p "$(dirname "$OUT_JSON")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT/src:$ROOT/qwen-vl-utils/src${PYTHONPATH:+:$PYTHONPATH}"
STEP="$ROOT/scripts/bench/gpu_step.py"

if [[ $DRY_RUN == 1 ]]; then
    "$PY" "$STEP" --dry-run --sizes 3b,7b --train-tokens 512,2048 --json "$WORK/plan.json"
    "$PY" "$STEP" --sizes cpu-tiny --generations 4 --frames 4 --frame-size 56x56 --text-tokens 20 \
        --new-tokens 4 --train-tokens 4,8 --repeats 1 --no-sequential --optim adamw --json "$WORK/cpu-tiny.json"
    PARTS=(plan cpu-tiny)
else
    # per size: a hard limit, so that one stuck size cannot take the whole device budget
    timeout 200 "$PY" "$STEP" --sizes 3b --new-tokens 512 --train-tokens 512,2048 --repeats 2 --no-sequential \
        --optim adamw --json "$WORK/3b.json" || echo "gpu_check: 3b exited with status $?" >&2
    timeout 260 "$PY" "$STEP" --sizes 7b --new-tokens 512 --train-tokens 512,2048 --repeats 2 --no-sequential \
        --optim none --json "$WORK/7b.json" || echo "gpu_check: 7b exited with status $?" >&2
    PARTS=(3b 7b)
fi

# one JSON: every part's report (a part that did not finish is recorded as missing)
"$PY" - "$OUT_JSON" "$WORK" "${PARTS[@]}" <<'EOF'
import json, sys
from pathlib import Path
out, work, parts = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
merged = {"parts": {}}
for part in parts:
    path = work / f"{part}.json"
    merged["parts"][part] = json.loads(path.read_text()) if path.is_file() else {"missing": "did not finish"}
Path(out).write_text(json.dumps(merged, indent=2) + "\n")
missing = [p for p in parts if "missing" in merged["parts"][p]]
print(f"gpu_check: wrote {out}" + (f" (missing: {', '.join(missing)})" if missing else ""))
sys.exit(1 if missing else 0)
EOF
