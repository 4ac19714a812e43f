#!/usr/bin/env bash
# Prepared GPU check for the mixed-precision path (issue 6), run through the device tool as
#   bash .gpu/boot.sh bash scripts/gpu-mixed.sh
# 1. correctness on the card: the f16 matmul tests (tensor-core kernels against the float64
#    reference) and the model tests (HF fixtures in f32 and in mixed precision);
# 2. matmul f32 vs f16 on the square 4096 and Pythia-410m shapes, in one process;
# 3. training steps, mixed and f32 in the same run (same card, same session).
# Results go to $OUT/results.tgz (r/*.json, r/*.log); a summary is printed at the end.
set -u
out=${OUT:-gpu-out}; r="$out/r"; mkdir -p "$r"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
budget=${SRK_GPU_BUDGET:-400}
t0=$(date +%s)
left() { echo $(( budget - ($(date +%s) - t0) )); }
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$r/progress.txt"; }
srk="node dist/src/cli.js"
run() { # run SECONDS NAME command...
  local limit=$1 name=$2; shift 2
  local l; l=$(left); [ "$l" -le 5 ] && { stamp "skip $name (budget)"; return; }
  [ "$limit" -gt "$l" ] && limit=$l
  stamp "$name"; timeout "$limit" "$@" > "$r/$name.json" 2> "$r/$name.log"; echo "rc=$?" >> "$r/$name.log"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$r/nvidia-smi.txt" 2>&1
run 20 info $srk info --json
run 100 tests node node_modules/vitest/vitest.mjs run test/engine/matmul-f16.test.ts test/model
run 60 matmul $srk bench matmul --json --precision mixed --only 'square 4096|pythia-410m'
step() { run 60 "step-$1-$2-$3" $srk bench step --shape "$1" --pairs 8 --seq 512 --prompt 256 --loss "$2" --precision "$3" --json; }
step pythia-160m sr-dpo mixed
step pythia-160m dpo mixed
step pythia-410m sr-dpo mixed
step pythia-410m dpo mixed
step pythia-160m sr-dpo f32
step pythia-410m sr-dpo f32
stamp done
tar czf "$out/results.tgz" -C "$out" r
cat "$r/nvidia-smi.txt"
grep -E "✓|×|Test Files|Tests |AssertionError|Error:" "$r/tests.json" | head -30
grep -E "copy|square 4096|f16" "$r/matmul.log" | head -24
for f in "$r"/step-*.json; do
  node -e "const j=JSON.parse(require('fs').readFileSync('$f'));const s=j.step;console.log('$f'.split('/').pop(), s.precision, s.stepMs.toFixed(1)+' ms', Math.round(s.tokensPerS)+' tok/s', (s.peakInUseBytes/2**30).toFixed(2)+' GiB', s.precisionCheck?JSON.stringify(s.precisionCheck):'')" 2>/dev/null || { echo "$f:"; tail -4 "${f%.json}.log"; }
done
