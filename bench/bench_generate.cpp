// Generation speed: the C++ side of bench/compare_generate.py.
//   bench_generate MODEL PROMPTS.safetensors THREADS NEW_TOKENS [--dtype bfloat16] [--adapter DIR] [--merge]
// PROMPTS holds input_ids / attention_mask, left-padded (written by the Python script so both sides see the
// same prompts). No stop tokens: every row generates exactly NEW_TOKENS, as HF with min_new_tokens does.
// Prints one JSON line: prefill seconds, decode seconds per token and decode tokens/s (all rows).
#include <chrono>
#include <cstdio>
#include <iostream>

#include <ATen/Parallel.h>

#include "peft/error.h"
#include "peft/generate/generate.h"
#include "peft/io/safetensors.h"
#include "peft/methods/adapter_io.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"
#include "peft/runtime.h"

int main(int argc, char** argv) {
  peft::tune_allocator();
  if (argc < 5) {
    std::cerr << "usage: bench_generate MODEL PROMPTS.safetensors THREADS NEW_TOKENS [--dtype bfloat16] "
                 "[--adapter DIR] [--merge]\n";
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(argv[3]));
    const int64_t new_tokens = std::stoll(argv[4]);
    peft::LoadOptions load;
    std::string adapter;
    bool merge = false;
    for (int i = 5; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--dtype" && i + 1 < argc) load.dtype = std::string(argv[++i]) == "bfloat16" ? torch::kBFloat16 : torch::kFloat;
      else if (a == "--adapter" && i + 1 < argc) adapter = argv[++i];
      else if (a == "--merge") merge = true;
      else peft::fail("unknown argument {}", a);
    }
    auto inputs = peft::io::SafetensorsFile::open(argv[2]);
    const torch::Tensor ids = inputs.tensor("input_ids").clone(), mask = inputs.tensor("attention_mask").clone();
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t r = 0; r < ids.size(0); ++r) {
      std::vector<int64_t> row;
      for (int64_t t = 0; t < ids.size(1); ++t)
        if (mask[r][t].item<int64_t>() != 0) row.push_back(ids[r][t].item<int64_t>());
      prompts.push_back(row);
    }
    auto lm = peft::load_causal_lm(argv[1], load);
    peft::AdaptedModel model(std::static_pointer_cast<peft::Model>(lm));
    if (!adapter.empty()) peft::load_adapter(model, adapter);
    if (merge) model.merge();
    lm->eval();
    peft::GenerationOptions o;
    o.max_new_tokens = new_tokens;
    peft::generate(model, prompts, [&] { auto w = o; w.max_new_tokens = 2; return w; }());  // warm-up
    const auto result = peft::generate(model, prompts, o);
    const double steps = double(new_tokens - 1);
    std::printf("{\"impl\": \"peft.cpp\", \"prefill_s\": %.6f, \"decode_s_per_step\": %.6f, \"decode_tok_per_s\": %.2f}\n",
                result.prefill_seconds, result.decode_seconds / steps,
                steps * double(prompts.size()) / result.decode_seconds);
  } catch (const std::exception& e) {
    std::cerr << "bench_generate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
