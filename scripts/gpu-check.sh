#!/usr/bin/env bash
# The one prepared script for a lent GPU (see ../shared/gpu/README.md): correctness of the kernels
# against their CPU references on that GPU, then the benchmarks. Run through the device tool as
#   bash .gpu/boot.sh bash scripts/gpu-check.sh
# Results go to $OUT (or ./gpu-out): info.json, tests.txt, bench-*.json/log, nvidia-smi.txt.
set -u
out=${OUT:-gpu-out}; mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$out/progress.txt"; }
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
git rev-parse HEAD > "$out/commit.txt" 2>/dev/null || true
stamp info
node dist/src/cli.js info --json > "$out/info.json" 2> "$out/info.err"
stamp tests
timeout 240 node node_modules/vitest/vitest.mjs run test/engine ${SRK_GPU_TESTS:-} > "$out/tests.txt" 2>&1; echo "vitest rc=$?" >> "$out/tests.txt"
stamp bench copy
timeout 60 node dist/src/cli.js bench copy --json > "$out/bench-copy.json" 2> "$out/bench-copy.log"
stamp bench matmul
timeout 200 node dist/src/cli.js bench matmul --json --tiles > "$out/bench-matmul.json" 2> "$out/bench-matmul.log"
stamp bench matmul fast
timeout 60 node dist/src/cli.js bench matmul --json --fast --sizes 4096 --tokens 8192 > "$out/bench-matmul-fast.json" 2> "$out/bench-matmul-fast.log"
stamp done
