#!/usr/bin/env bash
# Train on a lent GPU machine (the `device` tool), one prepared script per call.
#
#   stage:  copy the packed crops carried in .gpu/ to /tmp/vs (they stay while the machine is warm, so a
#           pack larger than one call's 64 MiB travels in two calls)
#   train MINUTES:  five concurrent fits on the one GPU, all bounded by MINUTES:
#           main  - the shipped architecture (16-32-64-128), every source
#           wide  - 24-48-96-192, every source (is a wider net worth its CPU inference cost?)
#           xd-*  - the shipped architecture with one real mitochondria source held out (cross-dataset score)
#   slim MINUTES:  one fit of the fast variant (8-16-32-64, ~3x the CPU inference speed), alone on the GPU
#   Every 30 s (slim: 20 s) the logs, model cards and best weights are copied to $OUT, so a call cut off at its limit
#   still returns what was learnt.
#
# Packs are made here with: python3 scripts/train/train.py pack --compact --spec S.json --out .gpu/pack-X.npz
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: device-run.sh stage | train MINUTES | slim MINUTES}
mkdir -p /tmp/vs
if [ "$mode" = stage ]; then
  cp -v .gpu/*.npz /tmp/vs/
  nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c 'import torch, numpy, onnx; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  ls -la /tmp/vs
  exit 0
fi
minutes=${2:?usage: device-run.sh train|slim MINUTES}
cp .gpu/*.npz /tmp/vs/ 2>/dev/null
packs=(/tmp/vs/pack-*.npz)
echo "packs: ${packs[*]}"
out=${OUT:-/tmp/vs/out}
runs=/tmp/vs/runs
mkdir -p "$runs" "$out"
common=(--data "${packs[@]}" --minutes "$minutes" --iters 1000000 --batch 16 --crop 256 --val-every 500
        --patience 40 --save-seconds 60 --no-onnx --fresh)
fit() { # name, extra args...
  local name=$1; shift
  PYTHONUNBUFFERED=1 python3 scripts/train/train.py fit --out "$runs/$name" "${common[@]}" "$@" \
    > "$runs/$name.log" 2> "$runs/$name.err" &
}
period=30
if [ "$mode" = slim ]; then
  period=20
  fit slim --widths 8,16,32,64 --bottleneck 64 --val-every 250
else
  fit main
  fit wide --widths 24,48,96,192 --bottleneck 192
  fit xd-lucchi --holdout lucchi
  fit xd-cdeep3m --holdout cdeep3m
  fit xd-vnc --holdout vnc
fi

sync_out() {
  (cd "$runs" && tar cf "$out/logs.tar.tmp" --exclude='*.pt' --exclude='*.tmp' . && mv "$out/logs.tar.tmp" "$out/logs.tar")
  for m in main wide slim; do
    [ -f "$runs/$m/best.pt" ] && cp "$runs/$m/best.pt" "$out/$m.pt.tmp" && mv "$out/$m.pt.tmp" "$out/$m.pt"
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$runs/gpu.log"
}
while [ -n "$(jobs -r)" ]; do
  sleep "$period"
  sync_out
  for f in "$runs"/*.log; do echo "$(basename "$f"): $(grep '"val"' "$f" | tail -1 | cut -c1-160)"; done
done
wait
sync_out
for f in "$runs"/*.err; do [ -s "$f" ] && { echo "== $f"; tail -5 "$f"; }; done
echo done
