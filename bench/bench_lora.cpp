// LoRA cost: the C++ side of bench/bench_lora_peft.py.
//   bench_lora MODEL INPUTS.safetensors THREADS ITERS
// INPUTS holds input_ids / attention_mask / token_type_ids / labels. Times, on the same batch:
// base inference, LoRA (r 8, query + value) unmerged and merged inference, and a LoRA training step
// (forward + backward). Prints one JSON line of medians in seconds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>

#include <ATen/Parallel.h>

#include "peft/io/safetensors.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/spec.h"
#include "peft/models/load.h"
#include "peft/runtime.h"
#include "bench_util.h"

using peft::bench::median_seconds;

int main(int argc, char** argv) {
  peft::tune_allocator();
  if (argc != 5) {
    std::cerr << "usage: bench_lora MODEL INPUTS.safetensors THREADS ITERS\n";
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(argv[3]));
    const int iters = std::stoi(argv[4]);
    auto file = peft::io::SafetensorsFile::open(argv[2]);
    peft::ModelInput in{file.tensor("input_ids").clone(), file.tensor("attention_mask").clone(),
                          file.tensor("token_type_ids").clone()};
    torch::Tensor labels = file.tensor("labels").clone();
    peft::LoadOptions options;
    options.num_labels = 2;
    peft::AdaptedModel model(peft::load_sequence_classifier(argv[1], options));
    model.model()->eval();

    auto infer = [&] {
      torch::InferenceMode guard;
      model.forward(in);
    };
    const double base = median_seconds(iters, infer);
    model.add(peft::make_methods(peft::parse_method_spec("lora:r=8,lora_alpha=16,lora_dropout=0")));
    const double unmerged = median_seconds(iters, infer);
    model.merge();
    const double merged = median_seconds(iters, infer);
    model.unmerge();
    model.model()->train();
    const auto params = model.trainable_parameters();
    const double step = median_seconds(iters, [&] {
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      torch::Tensor loss = model.head().loss(model.forward(in), labels);
      loss.backward();
    });
    std::printf("{\"impl\": \"peft.cpp\", \"base_s\": %.6f, \"unmerged_s\": %.6f, \"merged_s\": %.6f, \"step_s\": %.6f}\n",
                base, unmerged, merged, step);
  } catch (const std::exception& e) {
    std::cerr << "bench_lora: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
