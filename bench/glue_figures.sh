#!/usr/bin/env bash
# Dev accuracy, step time and peak memory of several methods on one GLUE task, with the installed
# all-MiniLM-L6-v2, one `peft train` run per method and seed. Prints a Markdown table per run and a
# summary (mean ± standard deviation over seeds), and keeps the runs.
#
#   bench/glue_figures.sh TASK [TRAIN_SAMPLES] [EPOCHS] [MAX_SEQ_LEN] [SEED]
#   e.g. bench/glue_figures.sh rte 0 3 128      (0 = the whole training set)
#        bench/glue_figures.sh sst2 8000 1 64
# Environment:
#   METHODS="full lora houlsby"   the methods; an entry is a spec (lora, houlsby) or LABEL=SPEC
#                                 (e.g. lora12=lora:r=12,lora_alpha=24 diff=diff_pruning:l0_epochs=2)
#   SEEDS="1 2 3"                 several seeds (default: SEED)
#   OUT=dir                       the run folder (default /tmp/peft-figures)
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:?task}; samples=${2:-0}; epochs=${3:-3}; max_len=${4:-128}; seed=${5:-42}
data=${PEFT_SHARED_DATA:-../shared/data}/glue
folder=$(case $task in sst2) echo SST-2;; rte) echo RTE;; mrpc) echo MRPC;; cola) echo CoLA;; stsb) echo STS-B;; *) echo "$task";; esac)
out=${OUT:-/tmp/peft-figures}/$task
methods=${METHODS:-"full lora houlsby parallel prefix mam"}
seeds=${SEEDS:-$seed}

# Learning rates usual for each family on a small BERT: full fine-tuning low, diff pruning's w a little
# higher (it starts at zero and most of it is pruned away), new modules high.
lr_for() { case $1 in full*) echo 5e-5;; diff*) echo 1e-4;; prefix*) echo 5e-3;; *) echo 1e-3;; esac; }

mkdir -p "$out"
printf '| method | seed | trainable | dev %s | before projection | s/step | peak RSS MiB |\n|---|---|---|---|---|---|---|\n' "$task"
for s in $seeds; do
  for entry in $methods; do
    label=${entry%%=*}; spec=${entry#*=}
    run=$out/$label-s$s
    extra=()
    [ "$samples" -gt 0 ] && extra+=(--train-samples "$samples")
    /usr/bin/time -v -o "$run.time" build/peft train --task "$task" --data "$data/$folder" --method "$spec" \
      --epochs "$epochs" --lr "$(lr_for "$spec")" --batch-size 32 --max-seq-len "$max_len" --bucket --warmup-ratio 0.06 \
      --seed "$s" --log-every 50 --out "$run" --overwrite "${extra[@]}" > "$run.log" 2>&1 || { echo "| $label | $s | failed: see $run.log |"; continue; }
    rss=$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$run.time")
    python3 - "$run" "$label" "$s" "$rss" <<'PY'
import json, os, re, sys
run, label, seed, rss = sys.argv[1:]
found = re.search(r"trainable (\S+ \([0-9.]+%)", open(f"{run}.log").read())
trainable = found.group(1) + ")" if found else "?"
def metric(path):
    best = json.load(open(path)).get("best_metrics", {})
    return {k: v for k, v in best.items() if k in ("accuracy", "f1", "matthews", "pearson", "spearman")}
res = json.load(open(f"{run}/results.json"))
dense = metric(f"{run}/l0/results.json") if os.path.exists(f"{run}/l0/results.json") else {}
fmt = lambda m: ", ".join(f"{k} {v:.4f}" for k, v in m.items()) or "-"
print(f"| {label} | {seed} | {trainable} | {fmt(metric(f'{run}/results.json'))} | {fmt(dense)} | "
      f"{res.get('seconds_per_step', 0):.3f} | {rss} |")
PY
  done
done

# Mean ± standard deviation over the seeds, per method.
python3 - "$out" "$task" "$seeds" $methods <<'PY'
import json, os, statistics, sys
out, task, seeds, *methods = sys.argv[1:]
print(f"\n| method | dev {task}, mean ± sd over seeds {seeds} | runs |\n|---|---|---|")
for entry in methods:
    label = entry.split("=", 1)[0]
    values = {}
    for s in seeds.split():
        path = f"{out}/{label}-s{s}/results.json"
        if not os.path.exists(path):
            continue
        for k, v in json.load(open(path)).get("best_metrics", {}).items():
            if k in ("accuracy", "f1", "matthews", "pearson", "spearman"):
                values.setdefault(k, []).append(v)
    text = ", ".join(f"{k} {statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}" for k, v in values.items())
    print(f"| {label} | {text or 'no runs'} | {max((len(v) for v in values.values()), default=0)} |")
PY
