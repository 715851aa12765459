#!/usr/bin/env bash
# VersaVid-R1 training launcher.
#
#   bash run_qwen25vl_train.sh                              # embedded default (see below)
#   bash run_qwen25vl_train.sh MODEL_PATH DATA_PATH [-- extra flags for python -m versavid_r1.grpo]
#   MODEL_PATH=... DATA_PATH=... bash run_qwen25vl_train.sh [extra flags]
#   bash run_qwen25vl_train.sh --help                       # this text
#
# Embedded default (no MODEL_PATH): a small experiment on the CPU whose policy learns to read the video. It
# builds a tiny random Qwen2.5-VL offline, a generated video dataset of 96 rows with all four problem types
# (half of them "What colour is the big shape?", options always red/green/blue/yellow) and 128 held-out
# colour questions on other videos (under $DEMO_DIR, reused when present), starts both judge services on
# 127.0.0.1 with their lexical backend (no model: content-word coverage, a stand-in for the LLM judges),
# gives the model a seeded supervised warm start on the rows' ground truths (configs/warm_start_tiny_cpu.yaml,
# into $OUTPUT_DIR/warm-start), trains it with GRPO (configs/grpo_tiny_cpu.yaml), then evaluates the warm
# start and the final policy on the held-out questions, the final one also with every frame grey (blind)
# and with the videos shuffled between questions, and prints the reward at the start and the end per
# problem type and the held-out accuracies with 95 % intervals ($OUTPUT_DIR/heldout.json). It draws both
# in $OUTPUT_DIR/reward_curve.png and stops the services on exit (also on Ctrl-C or failure). About 3
# minutes on an idle 2-core machine (README, "Quick start").
#
# With MODEL_PATH and DATA_PATH: the paper recipe (configs/grpo_paper_8xA800.yaml: DeepSpeed ZeRO-3
# with CPU offload) on GPUs, launched by torchrun (multi-node capable). On a machine without a GPU the CPU
# config (configs/grpo_tiny_cpu.yaml) is used instead, unless CONFIG says otherwise. The judges must already
# be running (see docs/judges.md); training checks their health before the model loads.
#
# The training flags and the config's keys are checked first (a mistyped flag fails in about a second);
# Ctrl-C reports where training stopped and the command that resumes it.
#
# Environment (all optional):
#   MODEL_PATH         policy model directory or hub id            (unset: embedded default)
#   DATA_PATH          training JSONL                              (embedded default: generated)
#   VIDEO_ROOT         folder relative video paths resolve against (default: the JSONL's folder)
#   CONFIG             TrlParser YAML   (default: grpo_paper_8xA800.yaml with GPUs, else grpo_tiny_cpu.yaml)
#   DEEPSPEED_CONFIG   DeepSpeed JSON to use instead of the config's own `deepspeed:` entry (the paper
#                      config names configs/deepspeed/zero3_offload.json: ZeRO-3 + CPU offload)
#   OUTPUT_DIR         run folder (default: outputs/${RUN_NAME}_YYYYmmdd_HHMMSS); train.log is saved in it
#   RUN_NAME           (default: versavid-r1, or versavid-r1-tiny for the embedded default)
#   NPROC_PER_NODE     processes per node (default: visible GPUs, 1 without GPU). Paper: 6 policy GPUs,
#                      e.g. CUDA_VISIBLE_DEVICES=0,1,2,3,4,5 with the 72B judge on GPUs 6,7
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   torchrun rendezvous (default: 1, 0, 127.0.0.1, and
#                      29500 on several nodes, a free local port on one)
#   QWEN_JUDGE_URL     Qwen2.5 judge (default: http://127.0.0.1:5000; comma-separated replicas)
#   CAPTION_JUDGE_URL  AutoDQ caption judge (default: http://127.0.0.1:5200)
#   DEMO_DIR           where the embedded default keeps its tiny model and data (default: demo)
#   DEMO_ROWS, HELDOUT_ROWS  the embedded default's training rows and held-out questions (default: 96, 128)
#   WARM_START_CONFIG  the embedded default's warm start (default: configs/warm_start_tiny_cpu.yaml)
#   SEED               training seed of the warm start and GRPO (default: the configs' own, 0 and 42)
#   MODEL_FAMILY       the embedded default's tiny policy: qwen25vl (default), qwen3vl, qwen3vl_moe or qwen35
#   SKIP_INSTALL=1     do not run scripts/install.sh (use the active Python environment)
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # the comment block above, before anything runs
  sed -n '2,/^set -euo pipefail$/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
RESUME_ARGS=""  # the command line as given, for the resume hint after Ctrl-C
[[ $# -gt 0 ]] && RESUME_ARGS="$(printf ' %q' "$@")"

# ---- arguments: optional MODEL_PATH DATA_PATH, then flags for the training entry ----------------
if [[ $# -gt 0 && "$1" != -* ]]; then MODEL_PATH="$1"; shift; fi
if [[ $# -gt 0 && "$1" != -* ]]; then DATA_PATH="$1"; shift; fi
if [[ $# -gt 0 && "$1" == "--" ]]; then shift; fi
EXTRA_ARGS=("$@")

# ---- which run: the embedded default or the paper recipe ----------------------------------------
EMBEDDED=0
[[ -z "${MODEL_PATH:-}" ]] && EMBEDDED=1

if [[ $EMBEDDED == 1 ]]; then
  RUN_NAME="${RUN_NAME:-versavid-r1-tiny}"
  CONFIG="${CONFIG:-configs/grpo_tiny_cpu.yaml}"
  WARM_START_CONFIG="${WARM_START_CONFIG:-configs/warm_start_tiny_cpu.yaml}"
  MODEL_FAMILY="${MODEL_FAMILY:-qwen25vl}"
  case "$MODEL_FAMILY" in  # the tiny builder's --arch of each family
    qwen25vl) TINY_ARCH=qwen2_5_vl ;; qwen3vl) TINY_ARCH=qwen3_vl ;;
    qwen3vl_moe) TINY_ARCH=qwen3_vl_moe ;; qwen35) TINY_ARCH=qwen3_5 ;;
    *) echo "run_qwen25vl_train.sh: MODEL_FAMILY must be qwen25vl, qwen3vl, qwen3vl_moe or qwen35 (got '$MODEL_FAMILY')" >&2
       exit 2 ;;
  esac
else
  RUN_NAME="${RUN_NAME:-versavid-r1}"
  CONFIG_GIVEN="${CONFIG:-}"
  CONFIG="${CONFIG:-configs/grpo_paper_8xA800.yaml}"
  if [[ -z "${DATA_PATH:-}" ]]; then
    echo "run_qwen25vl_train.sh: MODEL_PATH is set but DATA_PATH is not (give a training JSONL)" >&2
    exit 2
  fi
fi
# The config files are checked before anything is installed or started: a typo costs a second, not a run.
for config_file in "$CONFIG" "${WARM_START_CONFIG:-}" "${DEEPSPEED_CONFIG:-}"; do
  if [[ -n "$config_file" && ! -f "$config_file" ]]; then
    echo "run_qwen25vl_train.sh: config file not found: $config_file" >&2
    exit 2
  fi
done

# ---- environment -----------------------------------------------------------------------------
if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  bash scripts/install.sh
  PY="$ROOT/.venv/bin/python"
  export PATH="$ROOT/.venv/bin:$PATH"
else
  PY="$(command -v python)"
fi

# The training flags and the config's keys, before anything slow: a typo costs a second (no torch import).
"$PY" -m versavid_r1.flag_check --config "$CONFIG" "${EXTRA_ARGS[@]}" || exit 2

NUM_GPUS="$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
# Without a GPU DeepSpeed picks its CPU accelerator anyway; saying so up front spares a warning per process.
[[ $NUM_GPUS -eq 0 ]] && export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"
if [[ $EMBEDDED == 0 && $NUM_GPUS -eq 0 && -z "${CONFIG_GIVEN:-}" ]]; then
  CONFIG=configs/grpo_tiny_cpu.yaml  # the 8xA800 recipe (bf16, DeepSpeed) cannot run here
  echo "[run] no GPU found: training with the CPU config $CONFIG (set CONFIG=... to choose another)"
fi
OUTPUT_DIR="${OUTPUT_DIR:-outputs/${RUN_NAME}_$(date +%Y%m%d_%H%M%S)}"
mkdir -p "$OUTPUT_DIR"
LOG="$OUTPUT_DIR/train.log"
echo "[run] output dir: $OUTPUT_DIR (full log: $LOG)"

NPROC_PER_NODE="${NPROC_PER_NODE:-$([[ $NUM_GPUS -gt 0 ]] && echo "$NUM_GPUS" || echo 1)}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
QWEN_JUDGE_URL="${QWEN_JUDGE_URL:-http://127.0.0.1:5000}"
CAPTION_JUDGE_URL="${CAPTION_JUDGE_URL:-http://127.0.0.1:5200}"

# ---- embedded default: tiny models, demo data, local judges --------------------------------------
JUDGE_PIDS=()
stop_judges() {
  local pid
  for pid in "${JUDGE_PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  JUDGE_PIDS=()
}
trap stop_judges EXIT
on_interrupt() {  # the training's own "interrupted at step N" line (torchrun prints a traceback after it)
  local where
  where="$(grep -E '^interrupted (at step|before)' "$LOG" 2>/dev/null | tail -n 1 || true)"
  echo "[run] ${where:-interrupted}" >&2
  echo "[run] resume: OUTPUT_DIR=$OUTPUT_DIR bash run_qwen25vl_train.sh${RESUME_ARGS} --resume_from_checkpoint true; full log: $LOG" >&2
  exit 130
}
trap on_interrupt INT TERM
interrupted() {  # STATUS: a process that handled Ctrl-C / SIGTERM itself exits 130 / 143 (bash then runs no trap)
  [[ $1 -eq 130 || $1 -eq 143 ]]
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_healthy() {  # URL PID NAME LOGFILE
  "$PY" -m versavid_r1.judges.wait "$1" --pid "$2" --name "$3" --log "$4"
}

if [[ $EMBEDDED == 1 ]]; then
  DEMO_DIR="${DEMO_DIR:-demo}"
  # One torch thread per process: a 0.3 M-parameter model gains nothing from more, and spinning threads
  # make every step several times slower as soon as another process (a judge, anything) wants a core.
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  # Loading and saving a 1 MB model needs no progress bars (transformers' own; the training bar stays).
  export HF_HUB_DISABLE_PROGRESS_BARS="${HF_HUB_DISABLE_PROGRESS_BARS:-1}"
  [[ $NUM_GPUS -gt 0 ]] && echo "[run] no MODEL_PATH: running the embedded tiny default (set MODEL_PATH and DATA_PATH for the paper recipe)"
  TINY_MODEL="$DEMO_DIR/tiny-$MODEL_FAMILY"
  echo "[run] 1/4 tiny $TINY_ARCH model and demo data in $DEMO_DIR"
  "$PY" scripts/make_tiny_qwen25vl.py --out "$TINY_MODEL" --arch "$TINY_ARCH" --overwrite
  "$PY" scripts/make_demo_data.py --out "$DEMO_DIR/data" --n "${DEMO_ROWS:-96}" --seed 0
  "$PY" scripts/make_demo_data.py --out "$DEMO_DIR/heldout" --heldout --n "${HELDOUT_ROWS:-128}" --seed 0
  DATA_PATH="${DATA_PATH:-$DEMO_DIR/data/demo.jsonl}"

  # The judges start now and get ready while the warm start runs. Lexical backend: verdicts and AutoDQ by
  # content-word coverage, no model (docs/judges.md, "The lexical backend").
  mkdir -p "$OUTPUT_DIR/judges"
  qport="$(free_port)"; cport="$(free_port)"
  QWEN_JUDGE_URL="http://127.0.0.1:$qport"; CAPTION_JUDGE_URL="http://127.0.0.1:$cport"
  "$PY" src/qwen25_judge_service.py --backend lexical --model lexical --port "$qport" \
      > "$OUTPUT_DIR/judges/qwen25_judge.log" 2>&1 &
  JUDGE_PIDS+=($!)
  "$PY" src/gpt35_judge_service.py --backend lexical --port "$cport" > "$OUTPUT_DIR/judges/caption_judge.log" 2>&1 &
  JUDGE_PIDS+=($!)
  echo "[run] judge services starting at $QWEN_JUDGE_URL and $CAPTION_JUDGE_URL (pids ${JUDGE_PIDS[*]}; logs in $OUTPUT_DIR/judges)"

  echo "[run] 2/4 warm start ($WARM_START_CONFIG) -> $OUTPUT_DIR/warm-start"
  set +e
  "$PY" -m versavid_r1.warm_start --config "$WARM_START_CONFIG" --model_name_or_path "$TINY_MODEL" \
      --data_path "$DATA_PATH" --output_dir "$OUTPUT_DIR/warm-start" ${SEED:+--seed "$SEED"} 2>&1 \
      | tee "$OUTPUT_DIR/warm_start.log"
  status=${PIPESTATUS[0]}
  set -e
  if interrupted "$status"; then on_interrupt; fi
  if [[ $status -ne 0 ]]; then
    echo "[run] warm start failed; full log: $OUTPUT_DIR/warm_start.log" >&2
    exit 1
  fi
  MODEL_PATH="$OUTPUT_DIR/warm-start"
  echo "[run] 3/4 judge services (lexical backend)"
  wait_healthy "$QWEN_JUDGE_URL" "${JUDGE_PIDS[0]}" "Qwen2.5 judge" "$OUTPUT_DIR/judges/qwen25_judge.log"
  wait_healthy "$CAPTION_JUDGE_URL" "${JUDGE_PIDS[1]}" "caption judge" "$OUTPUT_DIR/judges/caption_judge.log"
  echo "[run] 4/4 GRPO ($CONFIG)"
fi

# ---- launch ------------------------------------------------------------------------------------
if [[ -z "${MASTER_PORT:-}" ]]; then
  if [[ $NNODES == 1 ]]; then MASTER_PORT="$(free_port)"; else MASTER_PORT=29500; fi
fi
if [[ ($EMBEDDED == 1 || $NUM_GPUS -eq 0) && $NPROC_PER_NODE == 1 && $NNODES == 1 ]]; then
  LAUNCH=("$PY" -m versavid_r1.grpo)  # one process: torchrun would only wrap the model in DDP for nothing
else
  LAUNCH=(torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC_PER_NODE"
          --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" -m versavid_r1.grpo)
fi
ARGS=(--config "$CONFIG" --model_name_or_path "$MODEL_PATH" --data_path "$DATA_PATH"
      --output_dir "$OUTPUT_DIR" --qwen_judge_url "$QWEN_JUDGE_URL" --caption_judge_url "$CAPTION_JUDGE_URL")
[[ $EMBEDDED == 1 ]] && ARGS+=(--heldout_path "$DEMO_DIR/heldout/heldout.jsonl")
[[ -n "${SEED:-}" ]] && ARGS+=(--seed "$SEED")
[[ -n "${VIDEO_ROOT:-}" ]] && ARGS+=(--video_root "$VIDEO_ROOT")
[[ -n "${DEEPSPEED_CONFIG:-}" ]] && ARGS+=(--deepspeed "$DEEPSPEED_CONFIG")

echo "[run] ${LAUNCH[*]} ${ARGS[*]} ${EXTRA_ARGS[*]:-}" | tee -a "$LOG"
set +e
# tee ignores Ctrl-C so that it outlives the training and keeps its "interrupted at step N" line
"${LAUNCH[@]}" "${ARGS[@]}" "${EXTRA_ARGS[@]}" 2>&1 | (trap '' INT; exec tee -a "$LOG")
status=${PIPESTATUS[0]}
set -e
if interrupted "$status"; then on_interrupt; fi
if [[ $status -ne 0 ]]; then
  echo "[run] training failed (exit $status); full log: $LOG" >&2
  exit "$status"
fi
echo "[run] done in ${SECONDS} s in $OUTPUT_DIR (model, checkpoints and logs: the lines above); full log: $LOG"
