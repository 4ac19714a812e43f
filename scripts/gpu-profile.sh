#!/usr/bin/env bash
# Prepared GPU run (device tool): f16 matmul correctness on tensor cores, the tensor-core tile sweep
# on the square and Pythia-410m shapes, and per-kernel profiles of Sr-DPO steps, mixed and f32.
#   bash .gpu/boot.sh bash scripts/gpu-profile.sh
# Results: gpu-out/r/*, then $OUT/results.tgz (the device tool returns at most 8 files); summary on stdout.
set -u
work=gpu-out; r="$work/r"; rm -rf "$r"; mkdir -p "$r"; out=${OUT:-$work}; mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
budget=${SRK_GPU_BUDGET:-300}
t0=$(date +%s)
left() { echo $(( budget - ($(date +%s) - t0) )); }
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$r/progress.txt"; }
srk="node dist/src/cli.js"
run() { local limit=$1 name=$2; shift 2; local l; l=$(left); [ "$l" -le 5 ] && { stamp "skip $name"; return; }
  [ "$limit" -gt "$l" ] && limit=$l; stamp "$name"; timeout -k 10 "$limit" "$@" > "$r/$name.json" 2> "$r/$name.log"; echo "rc=$?" >> "$r/$name.log"; }
run 60 tests node node_modules/vitest/vitest.mjs run test/engine/matmul-f16.test.ts test/model/mixed-precision.test.ts
run 90 sweep $srk bench matmul --json --precision mixed --tiles --only 'square 4096|410m (mlp-up fwd|attn-out dW|qkv dx)'
for s in pythia-160m pythia-410m; do
  run 60 "prof-$s-mixed" $srk bench step --shape $s --loss sr-dpo --precision mixed --profile --json
done
run 60 prof-pythia-160m-f32 $srk bench step --shape pythia-160m --loss sr-dpo --precision f32 --profile --json
stamp done
tar czf "$out/results.tgz" -C "$work" r
sed 's/\x1b\[[0-9;]*m//g' "$r/tests.json" | grep -E "×|Test Files|Tests |AssertionError" | head -12
grep -E "f16|rror" "$r/sweep.log" | sort -t' ' -k1,1 | head -60
for f in "$r"/prof-*.json; do grep -E "profiled|^step " "${f%.json}.log"; done
