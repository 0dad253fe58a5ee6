#!/usr/bin/env bash
# The prepared GPU check: everything fltutor measures on a CUDA GPU, in one script and one
# results file, in under eight minutes on one H100-class GPU.
#
# 1. installs what the machine lacks from the wheels in .gpu/wheels (benchmarks/gpu_prepare.sh
#    packs them; nothing is downloaded), into a virtual environment that sees the machine's own
#    PyTorch, and unpacks .gpu/data*.tar.gz as the MNIST to read;
# 2. runs the test suite's GPU-marked tests (`pytest -m gpu`);
# 3. runs every notebook under nbval, in its quick profile, on the GPU;
# 4. runs the benchmarks' GPU rows: the engines (sequential against batched) at quick and paper
#    scale, a paper-scale CRPA round part by part with and without DP-SGD (with the projected
#    time of the study's Figure 4), and FedAvg against a plain loop;
# 5. with .gpu/data-full.tar.gz, the first rounds of the paper profile's CRPA run on the full
#    MNIST (`fltutor crpa --profile paper`, G = 4, T = 9), with and without DP-SGD.
#
# Each step has a time limit and goes on after a failure; the results file (default
# gpu_check_results.md, or the first argument) gets every step's output tail, its exit status
# and its seconds, under the machine's description. Run it from anywhere:
#
#   bash benchmarks/gpu_check.sh                       # results in gpu_check_results.md
#   bash benchmarks/gpu_check.sh /tmp/results.md
set -uo pipefail
cd "$(dirname "$0")/.."
results="$(realpath -m "${1:-gpu_check_results.md}")"
work="$(mktemp -d)"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

python3 -m venv --system-site-packages "$work/venv"
python="$work/venv/bin/python"
if [ -d .gpu/wheels ]; then
  "$python" -m pip install -q --no-index --find-links .gpu/wheels --no-deps .gpu/wheels/*.whl
fi
if [ -f .gpu/data.tar.gz ]; then
  mkdir -p "$work/data" && tar -xzf .gpu/data.tar.gz -C "$work/data"
  export FLTUTOR_DATA="$work/data"
fi
full_data=""
if [ -f .gpu/data-full.tar.gz ]; then
  mkdir -p "$work/full" && tar -xzf .gpu/data-full.tar.gz -C "$work/full"
  full_data="$work/full"
fi

{
  echo "# fltutor GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$python" -c "import torch, platform; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'Python', platform.python_version(), 'GPU', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')" 2>&1
  echo "data: ${FLTUTOR_DATA:-none}; full MNIST: ${full_data:-none}"
  echo '```'
} > "$results"

# step TITLE SECONDS COMMAND...: run COMMAND with a time limit; its tail, status and time go in
# the results file.
step() {
  local title="$1" limit="$2"; shift 2
  local start=$SECONDS log="$work/step.log"
  echo "== $title" >&2
  timeout "$limit" "$@" > "$log" 2>&1
  local status=$?
  {
    echo
    echo "## $title"
    echo
    echo "exit status $status$([ $status = 124 ] && echo ' (stopped at its limit)'), $((SECONDS - start)) s: \`$*\`"
    echo
    echo '```'
    tail -n 40 "$log"
    echo '```'
  } >> "$results"
  tail -n 3 "$log" >&2
}

step "GPU-marked tests" 60 "$python" -m pytest -q -m gpu -p no:cacheprovider tests
step "notebooks, quick profile, on the GPU" 210 "$python" -m pytest -q -p no:cacheprovider \
  --nbval-lax --nbval-cell-timeout=200 notebooks
step "engines: sequential against batched" 60 "$python" benchmarks/bench_engines.py --device cuda \
  --rounds 3 --markdown --models classifier,lenet5-wide
step "CRPA round by part, no DP and DP-SGD" 45 "$python" benchmarks/bench_crpa.py --device cuda \
  --scales paper --rounds 3 --markdown
step "FedAvg engine against a plain DataLoader loop" 30 "$python" benchmarks/bench_fedavg.py \
  --device cuda --rounds 3 --markdown
if [ -n "$full_data" ]; then
  for dp in "" --dp; do
    step "paper profile on the full MNIST, 4 -> 9 ${dp:-without DP}" 25 "$python" -m fltutor.cli \
      crpa --profile paper --generate 4 --target 9 --device cuda --data-root "$full_data" \
      --rounds 20 --no-progress --out "$work/paper${dp}" $dp
    "$python" -c "import json, sys; r = json.load(open(sys.argv[1]))['rounds']; print('s/round', sum(x['seconds'] for x in r[1:]) / max(len(r) - 1, 1), 'attack accuracy', [round(x['attack_accuracy'], 3) for x in r])" "$work/paper${dp}/metrics.json" >> "$results" 2>&1
  done
fi
echo "results: $results" >&2
