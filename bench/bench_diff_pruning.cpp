// Diff-pruning cost against full fine-tuning, on one model and one batch.
//   bench_diff_pruning MODEL [THREADS] [ITERS] [BATCH] [SEQ]     (ITERS 0: switching and file sizes only)
// Times (medians, seconds; the two are stepped alternately so shared-machine load hits both): a full fine-tuning step (forward + backward + AdamW over every
// parameter), a diff-pruning step with gates (stage 1: forward + backward + AdamW over w, log alpha
// and the head), a fixed-mask step (stage 2); then applying + reverting a 0.5% sparse diff against
// reloading the checkpoint, and the task file's size against a dense save. Prints one JSON line.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

#include <ATen/Parallel.h>

#include "peft/methods/adapted_model.h"
#include "peft/methods/diff_pruning.h"
#include "peft/methods/registry.h"
#include "peft/methods/sparse_diff.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/train/optimizer.h"
#include "peft/runtime.h"
#include "bench_util.h"

namespace {

using peft::bench::median;
using peft::bench::median_seconds;
using peft::bench::seconds;

// One optimizer step of a model on the batch; `extra` adds to the loss (the L0 term).
struct Stepper {
  peft::AdaptedModel* model;
  torch::optim::Optimizer* opt;
  std::function<torch::Tensor()> extra;
  void operator()(const peft::ModelInput& in, const torch::Tensor& labels) const {
    model->model()->train();
    opt->zero_grad();
    torch::Tensor loss = model->head().loss(model->forward(in), labels);
    if (extra) loss = loss + extra();
    loss.backward();
    opt->step();
  }
};

// Steps of `a` and `b` taken alternately (the machine is shared: load changes hit both alike).
// Returns {median a, median b, median of the per-pair ratios b / a}.
std::array<double, 3> interleaved(const Stepper& a, const Stepper& b, const peft::ModelInput& in,
                                  const torch::Tensor& labels, int iters) {
  a(in, labels);
  b(in, labels);
  std::vector<double> ta, tb, ratio;
  for (int i = 0; i < iters; ++i) {
    ta.push_back(seconds([&] { a(in, labels); }));
    tb.push_back(seconds([&] { b(in, labels); }));
    ratio.push_back(tb.back() / ta.back());
  }
  return {median(ta), median(tb), median(ratio)};
}

}  // namespace

int main(int argc, char** argv) {
  peft::tune_allocator();
  if (argc < 2) {
    std::cerr << "usage: bench_diff_pruning MODEL [THREADS] [ITERS] [BATCH] [SEQ]\n";
    return 2;
  }
  try {
    if (argc > 2) at::set_num_threads(std::stoi(argv[2]));
    const int iters = argc > 3 ? std::stoi(argv[3]) : 5;
    const int64_t batch = argc > 4 ? std::stoll(argv[4]) : 32, seq = argc > 5 ? std::stoll(argv[5]) : 128;
    const std::string dir = peft::resolve_model_dir(argv[1]).string();
    peft::LoadOptions options;
    options.num_labels = 2;

    torch::manual_seed(0);
    const auto vocab = peft::load_config_for(dir, options).vocab_size;
    peft::ModelInput in{torch::randint(1000, vocab, {batch, seq}, torch::kLong), torch::ones({batch, seq}, torch::kLong),
                          torch::zeros({batch, seq}, torch::kLong)};
    // One padded position: this build's encoder needs a mask to exist (an all-ones batch passes SDPA an
    // undefined mask, which torch rejects); both methods see the same batch.
    in.attention_mask[0][seq - 1] = 0;
    const torch::Tensor labels = torch::randint(0, 2, {batch}, torch::kLong);

    // Full fine-tuning and diff pruning, side by side.
    torch::manual_seed(1);
    peft::AdaptedModel full(peft::load_sequence_classifier(dir, options));
    full.add(peft::make_method("full", nlohmann::json::object()));
    peft::train::FusedAdamW full_opt(full.trainable_parameters(), torch::optim::AdamWOptions(2e-5).weight_decay(0.01));
    torch::manual_seed(1);
    peft::AdaptedModel model(peft::load_sequence_classifier(dir, options));
    auto method = std::dynamic_pointer_cast<peft::DiffPruning>(peft::make_method("diff_pruning", nlohmann::json::object()));
    model.add(method);
    std::vector<torch::Tensor> weights, gates;
    for (auto& t : model.trainable_tensors())
      (t.key.find("log_alpha") != std::string::npos ? gates : weights).push_back(t.tensor);
    std::array<double, 3> gate_run{}, mask_run{};
    if (iters == 0) {  // switching only: random diffs stand in for trained ones
      torch::NoGradGuard no_grad;
      for (auto& w : weights) w.copy_(torch::randn_like(w) * 0.01);
    } else {  // stage 1: gates + L0
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(weights, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(2e-5).weight_decay(0.01)));
      groups.emplace_back(gates, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(0.1).weight_decay(0)));
      peft::train::FusedAdamW opt(groups, torch::optim::AdamWOptions(2e-5));
      const double lambda = method->settings().l0_lambda;
      gate_run = interleaved({&full, &full_opt, {}}, {&model, &opt, [&] { return lambda * method->penalty(); }}, in, labels, iters);
    }
    const auto projection = method->project();
    model.refreeze();
    if (iters > 0) {  // stage 2: fixed mask
      peft::train::FusedAdamW opt(model.trainable_parameters(), torch::optim::AdamWOptions(2e-5).weight_decay(0.01));
      mask_run = interleaved({&full, &full_opt, {}}, {&model, &opt, {}}, in, labels, iters);
    }
    const double full_step = (gate_run[0] + mask_run[0]) / 2, gate_step = gate_run[1], mask_step = mask_run[1];

    // The task file, and switching: apply + revert on the base against reloading the checkpoint.
    peft::SparseDiff diff = method->sparse_diff(*model.model(), argv[1]);
    const auto tmp = std::filesystem::temp_directory_path();
    const std::string f32 = (tmp / "bench_diff_f32.peftdiff").string(), f16 = (tmp / "bench_diff_f16.peftdiff").string();
    peft::write_sparse_diff(f32, diff);
    diff.value_dtype = torch::kHalf;
    peft::write_sparse_diff(f16, diff);
    const auto half = peft::read_sparse_diff(f16);
    peft::AdaptedModel base(peft::load_sequence_classifier(dir, options));
    auto t0 = std::chrono::steady_clock::now();
    const uint64_t checksum = peft::model_checksum(*base.model(), half);
    const double checksum_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double apply_revert = median_seconds(std::max(iters, 5) * 4, [&] {
      auto undo = peft::apply_diff(*base.model(), half, checksum);
      peft::revert_diff(*base.model(), undo);
    });
    const double reload = median_seconds(std::max(iters, 5), [&] { peft::load_sequence_classifier(dir, options); }, 1);
    const double dense = double(diff.dense_bytes());
    std::printf(
        "{\"impl\": \"peft.cpp\", \"threads\": %d, \"batch\": %lld, \"seq\": %lld, \"full_step_s\": %.4f, "
        "\"diff_gates_step_s\": %.4f, \"diff_mask_step_s\": %.4f, \"gates_vs_full\": %.3f, \"mask_vs_full\": %.3f, "
        "\"nnz\": %lld, \"numel\": %lld, \"apply_revert_s\": %.6f, \"reload_s\": %.4f, \"reload_vs_apply_revert\": %.1f, "
        "\"checksum_s\": %.4f, \"file_f32_pct_of_dense\": %.4f, \"file_f16_pct_of_dense\": %.4f}\n",
        at::get_num_threads(), (long long)batch, (long long)seq, full_step, gate_step, mask_step, gate_run[2],
        mask_run[2], (long long)projection.nnz, (long long)projection.numel, apply_revert, reload,
        reload / apply_revert, checksum_s, 100.0 * double(peft::file_size(f32)) / dense,
        100.0 * double(peft::file_size(f16)) / dense);
  } catch (const std::exception& e) {
    std::cerr << "bench_diff_pruning: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
