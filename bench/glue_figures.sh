#!/usr/bin/env bash
# Dev accuracy, step time and peak memory of several methods on one GLUE task, with the installed
# all-MiniLM-L6-v2, one `peft train` run per method. Prints a Markdown table (and keeps the runs).
#
#   bench/glue_figures.sh TASK [TRAIN_SAMPLES] [EPOCHS] [MAX_SEQ_LEN] [SEED]
#   e.g. bench/glue_figures.sh rte 0 3 128      (0 = the whole training set)
#        bench/glue_figures.sh sst2 8000 1 64
# METHODS="full lora houlsby" overrides the method list; OUT=dir the run folder (default /tmp/peft-figures).
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:?task}; samples=${2:-0}; epochs=${3:-3}; max_len=${4:-128}; seed=${5:-42}
data=${PEFT_SHARED_DATA:-../shared/data}/glue
folder=$(case $task in sst2) echo SST-2;; rte) echo RTE;; mrpc) echo MRPC;; cola) echo CoLA;; stsb) echo STS-B;; *) echo "$task";; esac)
out=${OUT:-/tmp/peft-figures}/$task-s$seed
methods=${METHODS:-"full lora houlsby parallel prefix mam"}

# Learning rates usual for each family on a small BERT (full fine-tuning low, new modules high).
lr_for() { case $1 in full) echo 5e-5;; prefix) echo 5e-3;; *) echo 1e-3;; esac; }

mkdir -p "$out"
printf '| method | trainable | dev %s | s/step | peak RSS MiB |\n|---|---|---|---|---|\n' "$task"
for m in $methods; do
  run=$out/$m
  extra=()
  [ "$samples" -gt 0 ] && extra+=(--train-samples "$samples")
  /usr/bin/time -v -o "$run.time" build/peft train --task "$task" --data "$data/$folder" --method "$m" \
    --epochs "$epochs" --lr "$(lr_for "$m")" --batch-size 32 --max-seq-len "$max_len" --bucket --warmup-ratio 0.06 \
    --seed "$seed" --log-every 50 --out "$run" --overwrite "${extra[@]}" > "$run.log" 2>&1 || { echo "| $m | failed: see $run.log |"; continue; }
  rss=$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$run.time")
  python3 - "$run" "$m" "$rss" <<'EOF'
import json, re, sys
run, method, rss = sys.argv[1:]
found = re.search(r"trainable (\S+ \([0-9.]+%)", open(f"{run}.log").read())
trainable = found.group(1) + ")" if found else "?"
res = json.load(open(f"{run}/results.json"))
best = res.get("best_metrics", {})
metric = {k: v for k, v in best.items() if k in ("accuracy", "f1", "matthews", "pearson", "spearman")}
print(f"| {method} | {trainable} | "
      f"{', '.join(f'{k} {v:.4f}' for k, v in metric.items())} | {res.get('seconds_per_step', 0):.3f} | {rss} |")
EOF
done
