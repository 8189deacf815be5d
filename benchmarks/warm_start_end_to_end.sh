#!/usr/bin/env bash
# The nightly case end to end, once (BENCHMARKS.md, "Nightly retrain"):
# local_runner.py with its defaults on drop A (the first halves of MNIST's
# train and t10k splits), then on drop B (the second halves) from scratch
# and with --warm-start, each from its own copy of A's serving root. Writes
# benchmarks/results/warm_start_end_to_end_<date>.json: each run's wall
# time, exit code, command and run_summary.json.
#
#   benchmarks/warm_start_end_to_end.sh [work dir]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/warm-start-end-to-end}
rm -rf "$work"
mkdir -p "$work/data"
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python - "$work" <<'PY'
import sys
from benchmarks import recording
from components.example_gen import idx
for span in (1, 2):
  for prefix, size in (('train', 30000), ('t10k', 5000)):
    idx.write_split(f'{sys.argv[1]}/drop-{span}', prefix, *recording.read_mnist(
        prefix, (span - 1) * size, span * size))
PY
run() {  # run NAME FLAGS...: one timed local_runner.py run
  local name=$1 rc=0 start end
  shift
  start=$(date +%s.%N)
  .venv/bin/python local_runner.py "$@" > "$work/$name.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  echo "$name: exit $rc, $(echo "$end - $start" | bc) s"
  printf '{"returncode": %d, "wall_seconds": %s, "command": "%s"}' "$rc" \
    "$(echo "$end - $start" | bc)" "python local_runner.py $*" > "$work/$name.json"
}
cp -r "$work/drop-1" "$work/data/span-1"
run a --data-dir "$work/data" --output-dir "$work/a"
cp -r "$work/drop-2" "$work/data/span-2"
cp -a "$work/a/serving_model" "$work/serving-scratch"
cp -a "$work/a/serving_model" "$work/serving-warm"
run scratch --data-dir "$work/data" --output-dir "$work/scratch" \
  --serving-dir "$work/serving-scratch"
run warm --data-dir "$work/data" --output-dir "$work/warm" \
  --serving-dir "$work/serving-warm" --warm-start
.venv/bin/python - "$work" <<'PY'
import json, sys
from benchmarks import recording
work = sys.argv[1]
result = {**recording.result_header('benchmarks.warm_start_end_to_end', '',
                                    [], prefix='warm_start_end_to_end'),
          'module': 'benchmarks/warm_start_end_to_end.sh',
          'command': 'benchmarks/warm_start_end_to_end.sh',
          'drops': {'a': 'train[0:30000], t10k[0:5000]',
                    'b': 'train[30000:60000], t10k[5000:10000]'}}
for name in ('a', 'scratch', 'warm'):
  with open(f'{work}/{name}.json') as f:
    result[name] = json.load(f)
  with open(f'{work}/{name}/run_summary.json') as f:
    result[name]['run_summary'] = json.load(f)
recording.write_results(result, str(recording.RESULTS_DIR))
for name in ('scratch', 'warm'):
  s = result[name]['run_summary']
  print(f"{name}: held-out -ELBO {s['metrics']['neg_elbo']:.2f}, Trainer "
        f"{s['components']['Trainer']['seconds']:.0f} s, "
        f"{s['training']['description']}")
PY
