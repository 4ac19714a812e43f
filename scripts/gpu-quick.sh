#!/usr/bin/env bash
# A short GPU check (about a minute on an H100), for when little device time is left: attention
# correctness on the GPU, the attention bench, the training-step benches (packed and unpacked) and
# the matmul order check. Run as: bash .gpu/boot.sh bash scripts/gpu-quick.sh (results in $OUT).
S="node dist/src/cli.js"; export XDG_RUNTIME_DIR=/tmp; t0=$(date +%s)
timeout 30 node node_modules/vitest/vitest.mjs run test/kernels/attention.test.ts > $OUT/attn-tests.txt 2>&1; grep -E "Tests " $OUT/attn-tests.txt
timeout 25 $S bench attention --json > $OUT/attention.json 2> $OUT/attention.log; grep -E "fwd" $OUT/attention.log
for a in "pythia-160m dpo --packed" "pythia-160m sr-dpo --packed" "pythia-160m sr-dpo --no-packed" "pythia-410m dpo --packed" "pythia-410m sr-dpo --packed"; do set -- $a
  timeout 40 $S bench step --shape $1 --pairs 8 --seq 512 --prompt 256 --loss $2 $3 --json > $OUT/step-$1-$2$3.json 2>/dev/null
  node -e "const j=JSON.parse(require('fs').readFileSync('$OUT/step-$1-$2$3.json')).step;console.log('$1 $2 $3', j.stepMs.toFixed(1)+' ms', Math.round(j.unpackedTokensPerS)+' tok/s', (j.peakInUseBytes/2**30).toFixed(2)+' GiB')" 2>&1 | tail -1
done
timeout 20 $S bench matmul --only 'mlp-down fwd' 2>/dev/null | grep -E "pythia|copy"
timeout 20 $S bench matmul --only 'mlp-down fwd' --reverse --sizes 4096 2>/dev/null | grep -E "pythia"
echo "total $(( $(date +%s) - t0 ))s"
