#include "peft/train/evaluate.h"

#include <cmath>

#include "peft/error.h"
#include "peft/train/metrics.h"

namespace peft::train {
namespace {

// Token-weighted mean of the causal-LM loss over the whole set (HF's eval_loss averages per batch instead).
EvalResult evaluate_lm(TrainableModel& model, const data::TokenizedDataset& data, const data::BatchOptions& options,
                       torch::Device device) {
  double loss_sum = 0;
  int64_t tokens = 0;
  for (const auto& indices : data::plan_batches(data, options, 0)) {
    data::Batch batch = data::collate(data, indices, device);
    const int64_t n = batch.labels.narrow(1, 1, batch.labels.size(1) - 1).ne(-100).sum().item<int64_t>();
    if (n == 0) continue;
    loss_sum += model.head.loss(model.forward(batch.input), batch.labels).item<double>() * double(n);
    tokens += n;
  }
  if (tokens == 0) fail("evaluate: no labelled tokens in the data set");
  EvalResult result;
  const double loss = loss_sum / double(tokens);
  result.metrics = {{"loss", loss}, {"perplexity", std::exp(loss)}, {"tokens", tokens}, {"examples", data.size()}};
  return result;
}

}  // namespace

EvalResult evaluate(TrainableModel& model, const data::TokenizedDataset& data, const std::vector<std::string>& metrics,
                    size_t batch_size, torch::Device device) {
  if (data.size() == 0) fail("evaluate: empty data set");
  torch::NoGradGuard no_grad;
  model.set_training(false);
  data::BatchOptions options;
  options.batch_size = batch_size;
  options.bucket_window = (data.size() + batch_size - 1) / batch_size;  // one window: sort everything
  if (!data.token_labels.empty()) return evaluate_lm(model, data, options, device);
  std::vector<torch::Tensor> parts(data.size());
  double loss_sum = 0;
  for (const auto& indices : data::plan_batches(data, options, 0)) {
    data::Batch batch = data::collate(data, indices, device);
    torch::Tensor logits = model.forward(batch.input).to(torch::kCPU, torch::kFloat);
    if (batch.labels.defined())
      loss_sum += model.head.loss(logits, batch.labels.cpu()).item<double>() * double(indices.size());
    for (size_t r = 0; r < indices.size(); ++r) parts[indices[r]] = logits[static_cast<int64_t>(r)];
  }
  EvalResult result;
  result.logits = torch::stack(parts);
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
