#include "peft/models/model.h"

#include <torch/nn/functional/loss.h>

#include "peft/error.h"

namespace peft {
namespace F = torch::nn::functional;

torch::Tensor HeadSpec::loss(const torch::Tensor& output, const torch::Tensor& labels) const {
  switch (kind) {
    case HeadKind::Regression:
      return F::mse_loss(output.squeeze(-1), labels.to(output.scalar_type()).view({-1}));
    case HeadKind::MultiLabel:
      return F::binary_cross_entropy_with_logits(output, labels.to(output.scalar_type()));
    case HeadKind::Classification:
      return F::cross_entropy(output.view({-1, num_outputs}), labels.view({-1}));
    case HeadKind::CausalLM: {
      // Token t predicts token t + 1; the mean runs over labels that are not -100, in float32 as HF does.
      const int64_t tokens = output.size(1);
      if (tokens < 2) fail("causal LM loss needs at least 2 tokens per row");
      torch::Tensor logits = output.narrow(1, 0, tokens - 1).reshape({-1, output.size(-1)}).to(torch::kFloat);
      torch::Tensor target = labels.narrow(1, 1, tokens - 1).reshape({-1});
      return F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().ignore_index(-100));
    }
  }
  fail("unknown head kind");
}

std::string HeadSpec::peft_task_type() const { return kind == HeadKind::CausalLM ? "CAUSAL_LM" : "SEQ_CLS"; }

std::vector<std::shared_ptr<LinearSite>> SiteIndex::linear_with(SiteRole role) const {
  std::vector<std::shared_ptr<LinearSite>> out;
  for (auto& [path, site] : linear)
    if (site->info().role == role) out.push_back(site);
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->info().layer < b->info().layer; });
  return out;
}

std::vector<std::shared_ptr<SublayerSite>> SiteIndex::sublayer_with(SiteRole role) const {
  std::vector<std::shared_ptr<SublayerSite>> out;
  for (auto& [path, site] : sublayer)
    if (site->info().role == role) out.push_back(site);
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->info().layer < b->info().layer; });
  return out;
}

std::vector<std::shared_ptr<AttentionKVSite>> SiteIndex::attention_kv_sites() const {
  std::vector<std::shared_ptr<AttentionKVSite>> out;
  for (auto& [path, site] : attention_kv) out.push_back(site);
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->info().layer < b->info().layer; });
  return out;
}

}  // namespace peft
