#!/usr/bin/env bash
# The one prepared script for a lent GPU (see ../shared/gpu/README.md): benchmarks, correctness of
# the kernels and models against their references on that GPU, and the PyTorch anchor on the same
# card. Run through the device tool, from the project root, as
#   bash .gpu/boot.sh bash scripts/gpu-check.sh
# Everything lands in $OUT/results.tgz (r/*.json, r/*.log, r/tests.txt); a summary is printed.
# A section is skipped once the run has used SRK_GPU_BUDGET seconds (default 420).
set -u
out=${OUT:-gpu-out}; r="$out/r"; mkdir -p "$r"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
budget=${SRK_GPU_BUDGET:-420}
t0=$(date +%s)
left() { echo $(( budget - ($(date +%s) - t0) )); }
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$r/progress.txt"; }
srk="node dist/src/cli.js"  # timeout runs programs, not shell functions
run() { # run SECONDS NAME command...: bounded by the section limit and the remaining budget
  local limit=$1 name=$2; shift 2
  local l; l=$(left); [ "$l" -le 5 ] && { stamp "skip $name (budget)"; return; }
  [ "$limit" -gt "$l" ] && limit=$l
  stamp "$name"; timeout "$limit" "$@" > "$r/$name.json" 2> "$r/$name.log"; echo "rc=$?" >> "$r/$name.log"
}
nvidia-smi > "$r/nvidia-smi.txt" 2>&1
run 20 info $srk info --json
run 90 matmul $srk bench matmul --json --tiles
for s in pythia-160m pythia-410m; do for l in dpo sr-dpo; do
  run 75 "step-$s-$l" $srk bench step --shape $s --pairs 8 --seq 512 --prompt 256 --loss $l --json
done; done
run 60 step-pythia-160m-sr-dpo-simple env SRK_MATMUL=simple $srk bench step --shape pythia-160m --pairs 8 --seq 512 --prompt 256 --loss sr-dpo --json
run 120 tests node node_modules/vitest/vitest.mjs run test/engine test/kernels test/model test/losses
for k in attention classifier norm optimizer; do run 30 "$k" $srk bench $k --json; done
run 100 torch python3 bench/anchor/torch_anchor.py pythia-160m pythia-410m
stamp done
tar czf "$out/results.tgz" -C "$out" r
# Summary for the tool's output tail.
grep -E "Test Files|Tests " "$r/tests.json" | tail -2
grep -E 'copy|square 4096|8192x2304x768' "$r/matmul.log" | head -14
for f in "$r"/step-*.json; do
  node -e "const j=JSON.parse(require('fs').readFileSync('$f'));console.log('$f'.split('/').pop(), j.step.stepMs.toFixed(1)+' ms', Math.round(j.step.tokensPerS)+' tok/s', Math.round(j.step.unpackedTokensPerS)+' unpacked tok/s', (j.step.peakInUseBytes/2**30).toFixed(2)+' GiB')" 2>/dev/null || { echo "$f:"; tail -3 "${f%.json}.log"; }
done
head -c 3000 "$r/torch.json"; tail -2 "$r/torch.log"
