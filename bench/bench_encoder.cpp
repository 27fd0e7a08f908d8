// Encoder forward throughput: the C++ side of bench/compare_encoder.py.
//   bench_encoder MODEL INPUTS.safetensors THREADS ITERS [SKIP_PADDING]
// INPUTS holds input_ids / attention_mask / token_type_ids (written by the Python script so both sides
// see identical batches). SKIP_PADDING=1 skips all-padding columns, as classification and `peft embed`
// do (ModelInput::skip_padding_columns). Prints one JSON line: seconds per batch (median and min) and sequences/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <ATen/Parallel.h>

#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/models/load.h"
#include "peft/runtime.h"

int main(int argc, char** argv) {
  peft::tune_allocator();
  if (argc != 5 && argc != 6) {
    std::cerr << "usage: bench_encoder MODEL INPUTS.safetensors THREADS ITERS [SKIP_PADDING]\n";
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(argv[3]));
    const int iters = std::stoi(argv[4]);
    auto inputs = peft::io::SafetensorsFile::open(argv[2]);
    peft::ModelInput in{inputs.tensor("input_ids").clone(), inputs.tensor("attention_mask").clone(),
                          inputs.tensor("token_type_ids").clone(), argc == 6 && std::string(argv[5]) == "1"};
    peft::EncoderModel model = peft::load_encoder_model(argv[1]);
    torch::InferenceMode guard;
    for (int i = 0; i < 2; ++i) model->forward(in);  // warm-up
    std::vector<double> seconds;
    for (int i = 0; i < iters; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto out = model->forward(in);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    std::printf("{\"impl\": \"peft.cpp\", \"median_s\": %.6f, \"min_s\": %.6f, \"seq_per_s\": %.2f}\n", median,
                seconds.front(), in.input_ids.size(0) / median);
  } catch (const std::exception& e) {
    std::cerr << "bench_encoder: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
