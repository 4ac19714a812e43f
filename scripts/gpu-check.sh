#!/usr/bin/env bash
# The one prepared script for a lent GPU (see ../shared/gpu/README.md): correctness of the kernels
# and models against their references on that GPU, then the benchmarks, then the PyTorch anchor on
# the same card. Run through the device tool, from the project root, as
#   bash .gpu/boot.sh bash scripts/gpu-check.sh
# Everything lands in $OUT/results.tgz (r/*.json, r/*.log) and a summary is printed.
set -u
out=${OUT:-gpu-out}; r="$out/r"; mkdir -p "$r"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$r/progress.txt"; }
srk() { node dist/src/cli.js "$@"; }
nvidia-smi > "$r/nvidia-smi.txt" 2>&1
stamp info;        srk info --json > "$r/info.json" 2> "$r/info.err"
stamp step;        for s in pythia-160m pythia-410m; do for l in dpo sr-dpo; do
                     timeout 120 srk bench step --shape $s --pairs 8 --seq 512 --prompt 256 --loss $l --json > "$r/step-$s-$l.json" 2> "$r/step-$s-$l.log"
                   done; done
stamp matmul;      timeout 120 srk bench matmul --json --tiles > "$r/matmul.json" 2> "$r/matmul.log"
stamp tests;       timeout 150 node node_modules/vitest/vitest.mjs run test/engine test/kernels test/model test/losses > "$r/tests.txt" 2>&1; echo "vitest rc=$?" >> "$r/tests.txt"
stamp kernels;     for k in attention classifier norm optimizer; do timeout 60 srk bench $k --json > "$r/$k.json" 2> "$r/$k.log"; done
stamp anchor;      timeout 150 python3 bench/anchor/torch_anchor.py pythia-160m pythia-410m > "$r/torch.json" 2> "$r/torch.log"
stamp done
tar czf "$out/results.tgz" -C "$out" r
# Summary for the tool's output tail.
tail -3 "$r/tests.txt"
grep -h '' "$r"/matmul.log | grep -E 'copy|square 4096|8192x2304x768' | head -12
for f in "$r"/step-*.json; do node -e "const j=JSON.parse(require('fs').readFileSync('$f'));console.log('$f'.split('/').pop(), j.step.stepMs.toFixed(1)+' ms', Math.round(j.step.tokensPerS)+' tok/s', (j.step.peakInUseBytes/2**30).toFixed(2)+' GiB')" 2>/dev/null || tail -2 "${f%.json}.log"; done
head -c 2500 "$r/torch.json"; tail -3 "$r/torch.log"
