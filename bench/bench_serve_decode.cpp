// Decoding a batch that mixes LoRA tasks on SmolLM2-135M: 8 prompts, each under its own LoRA task
// (r 8 on q_proj/v_proj, PEFT's LLaMA default), against the same batch under one merged task.
//   bench_serve_decode [NEW_TOKENS=32] [THREADS=2]
// Prints decode tokens/s of both and their ratio, and one JSON line.
#include <iostream>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "peft/generate/generate.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/spec.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"
#include "peft/models/model_tokenizer.h"
#include "peft/runtime.h"

namespace {

// Eight LoRA tasks attached under t0..t7 with trained-looking (non-zero) B matrices.
std::vector<std::shared_ptr<peft::Method>> attach_tasks(peft::Model& model, int count) {
  std::vector<std::shared_ptr<peft::Method>> all;
  for (int i = 0; i < count; ++i)
    for (auto& m : peft::make_methods(peft::parse_method_spec("lora:r=8,lora_dropout=0"))) {
      m->set_adapter_name(fmt::format("t{}", i));
      m->attach(model);
      torch::manual_seed(i + 1);
      torch::NoGradGuard no_grad;
      for (auto& t : m->tensors()) t.tensor.normal_(0, 0.02);
      all.push_back(m);
    }
  model.eval();
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  peft::tune_allocator();
  const int64_t new_tokens = argc > 1 ? std::stoll(argv[1]) : 32;
  at::set_num_threads(argc > 2 ? std::stoi(argv[2]) : 2);
  try {
    const std::string model_name = "SmolLM2-135M-Instruct";
    const auto mt = peft::load_model_tokenizer(model_name);
    const std::vector<std::string> texts = {
        "The capital of France is", "Once upon a time", "def fibonacci(n):", "The best way to learn is",
        "In 1969, astronauts", "My favourite recipe", "The weather today", "Photosynthesis converts"};
    std::vector<std::vector<int64_t>> prompts;
    for (auto& t : texts) prompts.push_back(mt.tokenizer->encode(t).ids);
    peft::GenerationOptions o;
    o.max_new_tokens = new_tokens;  // no stop tokens: every row decodes new_tokens

    auto once = [&](peft::Model& m, const peft::GenerationOptions& opts) {
      auto g = peft::generate(m, prompts, opts);
      return static_cast<double>(prompts.size()) * static_cast<double>(new_tokens - 1) / g.decode_seconds;
    };

    // One merged task, and eight tasks attached to a second copy of the base.
    auto merged_lm = peft::load_causal_lm(model_name);
    peft::AdaptedModel merged(std::static_pointer_cast<peft::Model>(merged_lm));
    merged.add(peft::make_methods(peft::parse_method_spec("lora:r=8,lora_dropout=0")));
    {
      torch::manual_seed(1);
      torch::NoGradGuard no_grad;
      for (auto& t : merged.trainable_tensors()) t.tensor.normal_(0, 0.02);
    }
    merged.merge();
    merged_lm->eval();
    auto lm = peft::load_causal_lm(model_name);
    auto tasks = attach_tasks(*lm, 8);
    peft::GenerationOptions mixed = o, one = o;
    for (size_t r = 0; r < prompts.size(); ++r) mixed.row_adapters.push_back(fmt::format("t{}", r % 8));
    one.row_adapters.assign(prompts.size(), "t0");

    // Interleaved rounds after a warm-up of each, medians reported.
    once(*merged_lm, o), once(*lm, mixed), once(*lm, one);
    std::vector<double> merged_r, mixed_r, one_r;
    for (int round = 0; round < 5; ++round) {
      merged_r.push_back(once(*merged_lm, o));
      mixed_r.push_back(once(*lm, mixed));
      one_r.push_back(once(*lm, one));
    }
    const double merged_rate = peft::bench::median(merged_r), mixed_rate = peft::bench::median(mixed_r),
                 one_rate = peft::bench::median(one_r);

    std::cout << fmt::format("merged single task     {:7.1f} tok/s\n", merged_rate);
    std::cout << fmt::format("one task, unmerged     {:7.1f} tok/s ({:.2f}x merged)\n", one_rate, one_rate / merged_rate);
    std::cout << fmt::format("8 tasks mixed          {:7.1f} tok/s ({:.2f}x merged)\n", mixed_rate, mixed_rate / merged_rate);
    std::cout << nlohmann::json{{"merged_tok_per_s", merged_rate}, {"one_task_unmerged_tok_per_s", one_rate},
                                {"mixed8_tok_per_s", mixed_rate}, {"new_tokens", new_tokens}, {"batch", prompts.size()}}
                     .dump()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_serve_decode: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
