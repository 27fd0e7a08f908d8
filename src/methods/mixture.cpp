#include "methods/mixture.h"

#include <charconv>

#include "peft/error.h"
#include "peft/methods/random.h"

namespace peft {

int64_t draw_expert(int64_t n) {
  return n <= 1 ? 0 : torch::randint(n, {1}, method_generator(), torch::kLong).item<int64_t>();
}

std::vector<torch::nn::Linear> register_copies(torch::nn::Module& owner, const std::string& name,
                                               const torch::nn::Linear& proto, int64_t n) {
  torch::nn::ModuleList list;
  std::vector<torch::nn::Linear> out;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < n; ++i) {
    auto copy = std::dynamic_pointer_cast<torch::nn::LinearImpl>(proto->clone());
    out.emplace_back(copy);
    list->push_back(out.back());
  }
  owner.register_module(name, list);
  return out;
}

std::pair<torch::Tensor, torch::Tensor> ExpertSide::pick(bool route) const {
  if (experts.size() == 1) return {experts[0]->weight, experts[0]->bias};
  if (!route) return mean();
  const auto& e = experts[static_cast<size_t>(draw_expert(static_cast<int64_t>(experts.size())))];
  return {e->weight, e->bias};
}

std::pair<torch::Tensor, torch::Tensor> ExpertSide::mean() const {
  if (experts.size() == 1) return {experts[0]->weight, experts[0]->bias};
  std::vector<torch::Tensor> w, b;
  for (auto& e : experts) {
    w.push_back(e->weight);
    if (e->bias.defined()) b.push_back(e->bias);
  }
  return {torch::stack(w).mean(0), b.empty() ? torch::Tensor() : torch::stack(b).mean(0)};
}

void ExpertSide::collapse(torch::nn::Module& owner, const std::string& name) {
  if (experts.size() == 1) return;
  torch::NoGradGuard no_grad;
  auto [w, b] = mean();
  auto merged = std::dynamic_pointer_cast<torch::nn::LinearImpl>(experts[0]->clone());
  merged->weight.copy_(w);
  if (b.defined()) merged->bias.copy_(b);
  torch::nn::ModuleList list;
  list->push_back(torch::nn::Linear(merged));
  owner.replace_module(name, list);
  experts = {torch::nn::Linear(merged)};
}

torch::Tensor MixtureMethod::training_loss(const std::function<torch::Tensor()>& forward, const HeadSpec& head,
                                           const torch::Tensor& labels) {
  if (consistency_.weight == 0) return head.loss(forward(), labels);
  // Two passes: each draws its own routes (and dropout masks).
  const torch::Tensor first = forward();
  const torch::Tensor second = forward();
  return consistency_loss(head, first, second, labels, consistency_);
}

torch::Tensor MixtureMethod::predict(const std::function<torch::Tensor()>& forward, const HeadSpec& head) {
  if (mode_.kind != AdaMixMode::Ensemble) return forward();
  std::vector<torch::Tensor> outputs;
  for (int64_t i = 0; i < mode_.k; ++i) outputs.push_back(forward());
  return average_outputs(head, outputs);
}

void MixtureMethod::set_mode(const AdaMixMode& mode) {
  if (mode.kind != AdaMixMode::Merged && merged_)
    fail("{}: the averaged experts are folded into the base weights; unmerge for {} evaluation", name_, mode.to_string());
  mode_ = mode;
  set_eval_routing(eval_routing());
}

void validate_mixture(const std::string& method, int64_t num_experts, int64_t r, const std::string& share,
                      const std::pair<const char*, const char*>& sides) {
  if (num_experts < 1) fail("{}: num_experts must be >= 1 (got {})", method, num_experts);
  if (r <= 0) fail("{}: r must be > 0 (got {})", method, r);
  if (share == "both" || share == "all" || share == std::string(sides.first) + sides.second ||
      share == std::string(sides.first) + "|" + sides.second)
    fail("{}: share '{}' shares every projection: nothing is left to mix or route (for a single module use {})",
         method, share, method == "adamix" ? "bottleneck" : "lora");
  if (share != "none" && share != sides.first && share != sides.second)
    fail("{}: share must be none, {} or {} (got '{}')", method, sides.first, sides.second, share);
}

AdaMixMode AdaMixMode::parse(const std::string& text) {
  AdaMixMode m;
  if (text == "merged") return m;
  if (text == "random") {
    m.kind = Random;
    return m;
  }
  const std::string prefix = "ensemble:";
  if (text.rfind(prefix, 0) == 0) {
    const std::string k = text.substr(prefix.size());
    int64_t value = 0;
    auto [end, ec] = std::from_chars(k.data(), k.data() + k.size(), value);
    if (ec == std::errc() && end == k.data() + k.size() && value >= 1) {
      m.kind = Ensemble;
      m.k = value;
      return m;
    }
  }
  fail("adamix mode '{}': expected merged, random or ensemble:K with K >= 1", text);
}

std::string AdaMixMode::to_string() const {
  if (kind == Merged) return "merged";
  if (kind == Random) return "random";
  return "ensemble:" + std::to_string(k);
}

std::vector<std::shared_ptr<Method>> adamix_methods(AdaptedModel& model) {
  std::vector<std::shared_ptr<Method>> out;
  for (auto& m : model.methods())
    if (std::dynamic_pointer_cast<MixtureMethod>(m)) out.push_back(m);
  return out;
}

void set_adamix_mode(AdaptedModel& model, const AdaMixMode& mode) {
  auto mixtures = adamix_methods(model);
  if (mixtures.empty()) fail("adamix mode {}: the model has no AdaMix method", mode.to_string());
  for (auto& m : mixtures) std::dynamic_pointer_cast<MixtureMethod>(m)->set_mode(mode);
}

}  // namespace peft
