#!/usr/bin/env bash
# E2E data-to-text on SmolLM2-135M-Instruct: the same small budget for each method, then greedy generation
# on a fixed dev subset scored with the E2E metrics. Resumable: a finished (method, seed) is skipped.
#   nice bash scripts/studies/e2e_smollm2.sh [OUT_DIR]      (default runs/study-e2e)
# Results: OUT_DIR/results.jsonl, one line per run (metrics + trainable parameters + s/step).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/study-e2e}
data=${PEFT_SHARED_DATA:-../shared/data}/e2e
steps=${STEPS:-60}
mkdir -p "$out"
declare -A spec=(
  [lora]='lora:r=4,lora_alpha=32,lora_dropout=0.1,target_modules=q_proj|v_proj'
  [adamix_lora]='adamix_lora:num_experts=8,r=4,lora_alpha=32,share=B,target_modules=q_proj|v_proj'
  [prefix]='prefix:num_virtual_tokens=10,prefix_projection=false'
  [pfeiffer]='pfeiffer:r=16'
)
declare -A lr=([lora]=2e-3 [adamix_lora]=2e-3 [prefix]=1e-2 [pfeiffer]=2e-3)
for seed in ${SEEDS:-1 2}; do
  for method in lora adamix_lora prefix pfeiffer; do
    run="$out/$method-s$seed"
    if grep -q "\"run\": \"$method-s$seed\"" "$out/results.jsonl" 2>/dev/null; then continue; fi
    build/peft train --model SmolLM2-135M-Instruct --task e2e --data "$data" --method "${spec[$method]}" \
      --train-samples 2000 --dev-samples 40 --batch-size 8 --max-steps "$steps" --eval-every "$steps" \
      --lr "${lr[$method]}" --warmup-steps 6 --seed "$seed" --log-every 20 --out "$run" --overwrite > "$run.train.log" 2>&1
    build/peft eval "$run" --data "$data" --samples 40 --max-new-tokens 48 --predictions "$run/dev-predictions.jsonl" \
      > "$run.eval.json"
    .venv/bin/python - "$run" "$method" "$seed" "$out/results.jsonl" <<'PY'
import json, re, sys
run, method, seed, results = sys.argv[1:]
metrics = json.load(open(run + ".eval.json"))
log = open(run + ".train.log").read()
trainable = int(re.search(r"trainable (\d+)", log).group(1))
s_per_step = float(re.search(r"\(([\d.]+) s/step\)", log).group(1))
row = {"run": f"{method}-s{seed}", "method": method, "seed": int(seed), "trainable": trainable,
       "s_per_step": s_per_step, **{k: metrics[k] for k in ("bleu", "nist", "meteor", "rouge_l", "cider", "loss")}}
open(results, "a").write(json.dumps(row) + "\n")
print(json.dumps(row))
PY
  done
done
