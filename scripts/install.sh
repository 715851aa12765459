#!/usr/bin/env bash
# The one install path: both README commands and .ci/run go through here.
#
#   bash scripts/install.sh          # CPU or GPU machine: core + dev extras into ./.venv
#   bash scripts/install.sh --gpu    # also the `gpu` extra (vllm, flash-attn; CUDA machines only)
#   bash scripts/install.sh --tracking   # also the `tracking` extra (wandb, for --report_to wandb)
#
# Environment: VENV (default .venv), PYTHON (default python3),
#   TORCH_PIP_ARGS (default --isolated; see below), FORCE_REINSTALL=1 to ignore the stamp.
#
# Why torch goes first and with --isolated: some machines' pip configuration offers a local CPU-only
# wheel `torch-2.13.0+cpu` that wins over the registry's build. PyPI's torchvision 0.28.0 is compiled
# against the registry's torch, so under the CPU wheel `import torchvision` fails. `pip --isolated`
# ignores the machine's pip configuration and takes the registry's torch and torchvision, which run
# on CPUs and GPUs alike. On a cluster whose pip configuration points at a mirror you need, set
# TORCH_PIP_ARGS="" (or your own flags).
#
# Idempotent: a stamp records a hash of the install inputs and what was installed (extras, gpu); a later
# run with nothing changed only checks the imports (about a second). An install with more than asked for
# counts as up to date: after `--tracking` or `--gpu`, the plain install that the launcher runs does nothing.
#
# Progress: one line per phase, and while pip works (it is silent with -q, and unpacking torch's CUDA
# wheels takes minutes) a line every HEARTBEAT_S seconds (default 30) with the time elapsed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_PIP_ARGS="${TORCH_PIP_ARGS---isolated}"
WITH_GPU=0
EXTRAS="dev"
for arg in "$@"; do
  case "$arg" in
    --gpu) WITH_GPU=1 ;;
    --tracking) EXTRAS="dev,tracking" ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

STAMP="$VENV/.versavid_install_stamp"
inputs_hash() {
  cat setup.py qwen-vl-utils/setup.py scripts/install.sh | sha256sum | cut -d' ' -f1
}
HASH="$(inputs_hash)"
PY="$VENV/bin/python"

# The stamp is one line: "<inputs hash> gpu<0|1> <extra,extra,...>".
covers_request() {  # the stamp's install includes everything this run asks for
  local hash gpu extras wanted
  read -r hash gpu extras < "$STAMP" || return 1
  [[ "$hash" == "$HASH" ]] || return 1
  [[ $WITH_GPU == 0 || "$gpu" == gpu1 ]] || return 1
  for wanted in ${EXTRAS//,/ }; do
    [[ ",$extras," == *",$wanted,"* ]] || return 1
  done
}

if [[ "${FORCE_REINSTALL:-0}" != 1 && -f "$STAMP" ]] && covers_request \
   && "$PY" -c "import torchvision, versavid_r1, qwen_vl_utils" 2>/dev/null; then
  echo "[install] environment $VENV is up to date"
  exit 0
fi

t0=$SECONDS
HEARTBEAT_S="${HEARTBEAT_S:-30}"
phase() {  # a line per phase, with the time since the install started
  echo "[install] $(printf '%4d' $((SECONDS - t0))) s  $*"
}
if [[ ! -x "$PY" ]]; then
  phase "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$PY" -m pip --disable-pip-version-check)
# Some machines' pip configuration lists local index folders that lack most packages; pip warns once
# per package about them. Those warnings are noise, so they are filtered from stderr (errors pass).
# While pip runs, a heartbeat line says that it still does and for how long.
quiet_pip() {
  local start=$SECONDS beat status=0
  ( while sleep "$HEARTBEAT_S"; do phase "  ... pip still working ($((SECONDS - start)) s in this step)"; done ) &
  beat=$!
  "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || status=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  return $status
}

if ! "$PY" -c "import torch, torchvision; assert torch.__version__.split('+')[0] == '2.13.0'" 2>/dev/null; then
  phase "torch 2.13.0 + torchvision 0.28.0 (pip $TORCH_PIP_ARGS; the largest step: about 5 GB with CUDA libraries)"
  # shellcheck disable=SC2086
  quiet_pip $TORCH_PIP_ARGS install -q "torch==2.13.0" "torchvision==0.28.0"
fi

phase "versavid-r1[$EXTRAS] and qwen-vl-utils (editable)"
quiet_pip install -q -e ".[$EXTRAS]" -e ./qwen-vl-utils
if [[ $WITH_GPU == 1 ]]; then
  # The `gpu` extra, in two steps: flash-attn compiles against the installed torch and CUDA toolkit,
  # so it must be built without pip's build isolation.
  phase "gpu extra: vllm, then flash-attn (compiles; needs nvcc)"
  quiet_pip install -q "vllm==0.31.0"
  quiet_pip install -q --no-build-isolation "flash-attn==2.8.3"
fi

"$PY" -c "import torch, torchvision, versavid_r1, qwen_vl_utils; print('[install] torch', torch.__version__, '| torchvision', torchvision.__version__)"
echo "$HASH gpu$WITH_GPU $EXTRAS" > "$STAMP"
phase "done ($(du -sh "$VENV" 2>/dev/null | cut -f1) in $VENV)"
