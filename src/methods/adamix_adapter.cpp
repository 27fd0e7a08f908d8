// AdaMix over bottleneck adapters: M down and M up projections per site (one side may be shared).
//   Δh = f(src · E_iᵀ + e_i) · D_jᵀ + d_j, i and j drawn per forward in training, averaged otherwise.
// Tensor keys: base_model.model.<site>.adamix_down.<i>.{weight,bias}, ...adamix_up.<j>.{weight,bias}.
#include <torch/nn/functional/linear.h>

#include "methods/mixture.h"
#include "peft/error.h"

namespace peft {
namespace {
namespace F = torch::nn::functional;

class AdaMixAdapter : public SublayerMethod {
 public:
  AdaMixAdapter(const AdaMixConfig& c, int64_t d) : c_(c) {
    torch::nn::Linear down(d, c.r), up(c.r, d);
    {
      torch::NoGradGuard no_grad;  // the bottleneck adapter's inits (bottleneck.cpp)
      if (c.init == "lora") {
        up->weight.zero_();
      } else {
        for (auto* w : {&down->weight, &up->weight}) w->normal_(0.0, 1e-2).clamp_(-2e-2, 2e-2);
      }
      down->bias.zero_();
      up->bias.zero_();
    }
    down_.experts = register_copies(*this, "adamix_down", down, c.share == "down" ? 1 : c.num_experts);
    up_.experts = register_copies(*this, "adamix_up", up, c.share == "up" ? 1 : c.num_experts);
  }

  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& h) override {
    const torch::Tensor& src = c_.insertion == "parallel" ? x : h;
    const bool route = is_training() || random_eval;
    auto [wd, bd] = down_.pick(route);
    auto [wu, bu] = up_.pick(route);
    torch::Tensor delta = F::linear(activate(F::linear(src, wd, bd)), wu, bu);
    return c_.composition == "scaled" ? h + delta * c_.scaling : h + delta;
  }

  void collapse() {
    down_.collapse(*this, "adamix_down");
    up_.collapse(*this, "adamix_up");
  }
  int64_t experts_down() const { return static_cast<int64_t>(down_.experts.size()); }
  int64_t experts_up() const { return static_cast<int64_t>(up_.experts.size()); }
  int64_t inference_parameters() const {
    int64_t n = 0;
    for (auto* side : {&down_, &up_}) n += side->experts[0]->weight.numel() + side->experts[0]->bias.numel();
    return n;
  }

  bool random_eval = false;

 private:
  torch::Tensor activate(const torch::Tensor& t) const {
    if (c_.activation == "relu") return torch::relu(t);
    if (c_.activation == "tanh") return torch::tanh(t);
    if (c_.activation == "gelu") return torch::gelu(t);
    return t;
  }
  AdaMixConfig c_;
  ExpertSide down_, up_;
};

class AdaMix : public MixtureMethod {
 public:
  explicit AdaMix(AdaMixConfig c) : MixtureMethod("adamix", c.consistency), config_(std::move(c)) { config_.validate(); }
  std::string type() const override { return "adamix"; }
  nlohmann::json config() const override { return config_.to_json(); }

  void attach(Model& model) override {
    const torch::Tensor ref = model.reference_weight();
    for (auto& site : sublayer_sites(model, config_.placement)) {
      auto m = std::make_shared<AdaMixAdapter>(config_, model.arch().hidden_size);
      m->to(ref.device(), ref.scalar_type());
      m->random_eval = eval_routing();
      modules_.attach(adapter_name(), type(), site, m);
    }
  }

  void detach(Model&) override {
    modules_.detach_all(adapter_name(), type());
  }

  std::vector<MethodTensor> tensors() override {
    return modules_.tensors();
  }

  int64_t inference_parameter_count() override {
    int64_t n = 0;
    for (auto& [site, m] : modules_) n += m->inference_parameters();
    return n;
  }

  // Module merging: every site keeps one down and one up projection, the experts' averages. The
  // method is then AdaMix with one expert (saved so), i.e. a single bottleneck adapter.
  void finalize() override {
    for (auto& [site, m] : modules_) m->collapse();
    config_.num_experts = 1;
  }

 private:
  void set_eval_routing(bool random) override {
    for (auto& [site, m] : modules_) m->random_eval = random;
  }

  AdaMixConfig config_;
  SiteModules<SublayerSite, AdaMixAdapter> modules_;
};

}  // namespace

std::shared_ptr<Method> make_adamix(const AdaMixConfig& config) { return std::make_shared<AdaMix>(config); }

}  // namespace peft
