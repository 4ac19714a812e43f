#!/usr/bin/env bash
# A short GPU check (about a minute on an H100), for when little device time is left: attention
# correctness on the GPU, the attention bench, the training-step benches (packed and unpacked) and
# the matmul order check. Run as: bash .gpu/boot.sh bash scripts/gpu-quick.sh
# Files: gpu-out/q/*, then $OUT/quick.tgz and $OUT/summary.txt (the device tool returns at most 8 files).
S="node dist/src/cli.js"; export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}; t0=$(date +%s)
q=gpu-out/q; rm -rf "$q"; mkdir -p "$q"; out=${OUT:-gpu-out}; mkdir -p "$out"
{
timeout -k 5 30 node node_modules/vitest/vitest.mjs run test/kernels/attention.test.ts > $q/attn-tests.txt 2>&1; grep -E "Tests " $q/attn-tests.txt
timeout -k 5 25 $S bench attention --json > $q/attention.json 2> $q/attention.log; grep -E "fwd" $q/attention.log
for a in "pythia-160m dpo --packed" "pythia-160m sr-dpo --packed" "pythia-160m sr-dpo --no-packed" "pythia-410m dpo --packed" "pythia-410m sr-dpo --packed"; do set -- $a
  timeout -k 5 40 $S bench step --shape $1 --pairs 8 --seq 512 --prompt 256 --loss $2 $3 --json > $q/step-$1-$2$3.json 2>/dev/null
  node -e "const j=JSON.parse(require('fs').readFileSync('$q/step-$1-$2$3.json')).step;console.log('$1 $2 $3', j.stepMs.toFixed(1)+' ms', Math.round(j.unpackedTokensPerS)+' tok/s', (j.peakInUseBytes/2**30).toFixed(2)+' GiB')" 2>&1 | tail -1
done
timeout -k 5 20 $S bench matmul --only 'mlp-down fwd' 2>/dev/null | grep -E "pythia|copy"
timeout -k 5 20 $S bench matmul --only 'mlp-down fwd' --reverse --sizes 4096 2>/dev/null | grep -E "pythia"
echo "total $(( $(date +%s) - t0 ))s; $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(cat dist/BUILD 2>/dev/null)"
} 2>&1 | tee "$out/summary.txt"
tar czf "$out/quick.tgz" -C gpu-out q
