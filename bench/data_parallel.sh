#!/usr/bin/env bash
# Data-parallel training on this machine: one process vs `--nproc 2` at the same global batch, for
# LoRA and full fine-tuning of the installed all-MiniLM-L6-v2 on SST-2 sentences. Prints a Markdown
# table: s/step, examples/s, threads per rank, peak RSS (the largest process), and the gradient bytes
# all-reduced per step.
#
#   bench/data_parallel.sh [STEPS] [GLOBAL_BATCH] [MAX_SEQ_LEN]     (default 30 32 64)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}; batch=${2:-32}; len=${3:-64}
data=${PEFT_SHARED_DATA:-../shared/data}/glue/SST-2
out=${OUT:-/tmp/peft-data-parallel}
cores=$(nproc)
mkdir -p "$out"
printf '| method | processes | threads/rank | batch/rank | s/step | examples/s | peak RSS MiB (largest rank) | all-reduced per step (time) |\n|---|---|---|---|---|---|---|---|\n'
for method in lora full; do
  lr=$([ $method = full ] && echo 5e-5 || echo 1e-3)
  for n in 1 2; do
    run=$out/$method-n$n
    per=$((batch / n))
    nproc_arg=(); [ "$n" -gt 1 ] && nproc_arg=(--nproc "$n")
    threads=$((cores / n)); [ $threads -lt 1 ] && threads=1
    OMP_NUM_THREADS=$threads /usr/bin/time -v -o "$run.time" build/peft train --task sst2 --data "$data" \
      --method $method --lr $lr --batch-size $per --max-steps "$steps" --train-samples $((steps * batch)) \
      --dev-samples 64 --max-seq-len "$len" --log-every 1000 --seed 1 --out "$run" --overwrite "${nproc_arg[@]}" \
      > "$run.log" 2> "$run.err" || { echo "| $method | $n | failed: see $run.err |"; continue; }
    sps=$(sed -n 's/.*(\([0-9.]*\) s\/step).*/\1/p' "$run.log")
    rss=$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$run.time")
    bytes=$(sed -n "s/.*ranks: \(.*\) of gradients all-reduced per step (\(.*\) per step).*/\1 (\2)/p" "$run.log"); bytes=${bytes:-"-"}
    eps=$(python3 -c "print(f'{$batch/$sps:.1f}')")
    echo "| $method | $n | $threads | $per | $sps | $eps | $rss | $bytes |"
  done
done
