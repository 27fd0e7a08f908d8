#include "peft/train/evaluate.h"

#include <cmath>

#include "peft/error.h"
#include "peft/train/metrics.h"

namespace peft::train {
namespace {

// This rank's share of the batches: every world_size-th one.
bool mine(size_t batch, const DataParallel* parallel) {
  return !parallel || static_cast<int>(batch % static_cast<size_t>(parallel->world_size())) == parallel->rank();
}

// Token-weighted mean of the causal-LM loss over the whole set (HF's eval_loss averages per batch instead).

EvalResult evaluate_lm(TrainableModel& model, const data::TokenizedDataset& data, const data::BatchOptions& options,
                       torch::Device device, DataParallel* parallel) {
  double loss_sum = 0;
  int64_t tokens = 0;
  const auto batches = data::plan_batches(data, options, 0);
  for (size_t b = 0; b < batches.size(); ++b) {
    if (!mine(b, parallel)) continue;
    const auto& indices = batches[b];
    data::Batch batch = data::collate(data, indices, device);
    const int64_t n = batch.labels.narrow(1, 1, batch.labels.size(1) - 1).ne(-100).sum().item<int64_t>();
    if (n == 0) continue;
    loss_sum += model.head.loss(model.forward(batch.input), batch.labels).item<double>() * double(n);
    tokens += n;
  }
  if (parallel) {
    auto sums = torch::tensor({loss_sum, double(tokens)}, torch::kDouble);
    parallel->all_reduce_sum({sums});
    loss_sum = sums[0].item<double>();
    tokens = static_cast<int64_t>(sums[1].item<double>());
  }
  if (tokens == 0) fail("evaluate: no labelled tokens in the data set");
  EvalResult result;
  const double loss = loss_sum / double(tokens);
  result.metrics = {{"loss", loss}, {"perplexity", std::exp(loss)}, {"tokens", tokens}, {"examples", data.size()}};
  return result;
}

}  // namespace

EvalResult evaluate(TrainableModel& model, const data::TokenizedDataset& data, const std::vector<std::string>& metrics,
                    size_t batch_size, torch::Device device, DataParallel* parallel) {
  if (data.size() == 0) fail("evaluate: empty data set");
  torch::NoGradGuard no_grad;
  model.set_training(false);
  data::BatchOptions options;
  options.batch_size = batch_size;
  options.bucket_window = (data.size() + batch_size - 1) / batch_size;  // one window: sort everything
  if (!data.token_labels.empty()) return evaluate_lm(model, data, options, device, parallel);
  std::vector<torch::Tensor> parts(data.size());
  double loss_sum = 0;
  int64_t width = 0;
  const auto batches = data::plan_batches(data, options, 0);
  for (size_t b = 0; b < batches.size(); ++b) {
    if (!mine(b, parallel)) continue;
    const auto& indices = batches[b];
    data::Batch batch = data::collate(data, indices, device);
    torch::Tensor logits = model.forward(batch.input).to(torch::kCPU, torch::kFloat);
    if (batch.labels.defined())
      loss_sum += model.head.loss(logits, batch.labels.cpu()).item<double>() * double(indices.size());
    for (size_t r = 0; r < indices.size(); ++r) parts[indices[r]] = logits[static_cast<int64_t>(r)];
    width = logits.size(1);
  }
  EvalResult result;
  if (parallel) {
    // Rows another rank ran are zeros here: the sum across ranks is every row's logits.
    width = parallel->all_gather(torch::tensor({width})).max().item<int64_t>();
    for (auto& p : parts)
      if (!p.defined()) p = torch::zeros({width});
    result.logits = torch::stack(parts);
    auto loss = torch::tensor({loss_sum}, torch::kDouble);
    parallel->all_reduce_sum({result.logits, loss});
    loss_sum = loss.item<double>();
  } else {
    result.logits = torch::stack(parts);
  }
  const bool regression = data.regression;
  torch::Tensor pred = regression ? result.logits.select(1, 0) : result.logits.argmax(1).to(torch::kFloat);
  pred = pred.to(torch::kDouble).contiguous();
  result.predicted.assign(pred.data_ptr<double>(), pred.data_ptr<double>() + pred.numel());
  result.metrics = nlohmann::json::object();
  if (!data.labels.empty()) {
    std::vector<double> gold(data.labels.begin(), data.labels.end());
    result.metrics = compute_metrics(metrics, result.predicted, gold);
    result.metrics["loss"] = loss_sum / double(data.size());
  }
  result.metrics["examples"] = data.size();
  return result;
}

}  // namespace peft::train
