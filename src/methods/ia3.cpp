#include "peft/methods/ia3.h"

#include "methods/json_config.h"
#include "peft/error.h"

namespace peft {

void Ia3Config::validate() const {
  if (target_modules.empty()) fail("ia3: target_modules is empty");
  // As PEFT: with list targets, every feed-forward module must also be a target.
  if (target_modules.regex.empty() && feedforward_modules.regex.empty())
    for (auto& f : feedforward_modules.names)
      if (std::find(target_modules.names.begin(), target_modules.names.end(), f) == target_modules.names.end())
        fail("ia3: feedforward_modules entry '{}' is not in target_modules", f);
}

Ia3Config Ia3Config::from_json(const nlohmann::json& j) {
  Ia3Config c;
  if (j.contains("target_modules") && !j["target_modules"].is_null()) {
    c.target_modules = TargetModules::from_json(j["target_modules"], "ia3: target_modules");
    c.default_targets = false;
  }
  if (j.contains("feedforward_modules") && !j["feedforward_modules"].is_null())
    c.feedforward_modules = TargetModules::from_json(j["feedforward_modules"], "ia3: feedforward_modules");
  read_key(j, "init_ia3_weights", c.init_ia3_weights);
  c.validate();
  return c;
}

nlohmann::json Ia3Config::to_json() const {
  return {{"target_modules", target_modules.to_json()},
          {"feedforward_modules", feedforward_modules.to_json()},
          {"init_ia3_weights", init_ia3_weights}};
}

namespace {

class Ia3Linear : public LinearMethod {
 public:
  Ia3Linear(bool feedforward, int64_t in, int64_t out, bool init_ones) : feedforward(feedforward) {
    auto shape = feedforward ? std::vector<int64_t>{1, in} : std::vector<int64_t>{out, 1};
    ia3_l = register_parameter("ia3_l", init_ones ? torch::ones(shape) : torch::rand(shape) + 0.5);
  }
  torch::Tensor transform_input(const torch::Tensor& x) override {
    return feedforward && !merged ? x * ia3_l.view(-1) : x;
  }
  torch::Tensor transform_output(const torch::Tensor& x, torch::Tensor y) override {
    return feedforward || merged ? y : y * ia3_l.view(-1);
  }
  bool changes_weight_or_input() const override { return feedforward && !merged; }

  torch::Tensor ia3_l;
  const bool feedforward;
  bool merged = false;
};

class Ia3 : public Method {
 public:
  explicit Ia3(Ia3Config c) : config_(std::move(c)) { config_.validate(); }
  std::string type() const override { return "ia3"; }
  nlohmann::json config() const override { return config_.to_json(); }

  void attach(Model& model) override {
    SiteIndex sites = model.sites();
    std::vector<std::string> names;
    for (auto& [path, site] : sites.linear) names.push_back(path);
    if (config_.default_targets && !selects_any(config_.target_modules, names)) {
      const Ia3Targets d = default_ia3_targets(model.arch().model_type);
      config_.target_modules = d.target_modules;
      config_.feedforward_modules = d.feedforward_modules;
    }
    for (auto& path : select_targets(config_.target_modules, names, "ia3: target_modules")) {
      auto site = sites.linear.at(path);
      auto m = std::make_shared<Ia3Linear>(config_.feedforward_modules.matches(path), site->in_features(),
                                           site->out_features(), config_.init_ia3_weights);
      m->to(site->weight.device(), site->weight.scalar_type());
      modules_.attach(adapter_name(), type(), site, m);
    }
  }

  void detach(Model&) override {
    if (merged_) unmerge();
    modules_.detach_all(adapter_name(), type());
  }

  std::vector<MethodTensor> tensors() override {
    return modules_.tensors();
  }

  bool mergeable() const override { return true; }
  void merge() override { scale_weights(false); }
  void unmerge() override { scale_weights(true); }

 private:
  // Feed-forward: W[:, j] *= l_j. Key/value: W[i, :] *= l_i and b_i *= l_i (HF output includes the bias).
  void scale_weights(bool undo) {
    if (merged_ != undo) return;
    torch::NoGradGuard no_grad;
    for (auto& [site, m] : modules_) {
      torch::Tensor l = m->ia3_l.to(site->weight.scalar_type());
      if (undo) l = 1.0 / l;
      site->weight_out_in().mul_(l);  // a view: scales Conv1D storage too
      if (!m->feedforward && site->bias.defined()) site->bias.mul_(l.view(-1));
      m->merged = !undo;
    }
    merged_ = !undo;
  }

  Ia3Config config_;
  SiteModules<LinearSite, Ia3Linear> modules_;
};

}  // namespace

std::shared_ptr<Method> make_ia3(const Ia3Config& config) { return std::make_shared<Ia3>(config); }

}  // namespace peft
