#include "peft/methods/bottleneck.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include "methods/json_config.h"
#include "peft/error.h"

namespace peft {

void BottleneckConfig::validate() const {
  check_choice("bottleneck", "placement", placement, {"attention", "ffn", "both"});
  check_choice("bottleneck", "insertion", insertion, {"sequential", "parallel"});
  check_choice("bottleneck", "composition", composition, {"add", "scaled", "gated"});
  check_choice("bottleneck", "activation", activation, {"relu", "tanh", "identity", "gelu"});
  check_choice("bottleneck", "init", init, {"near_identity", "lora"});
  if (r <= 0) fail("bottleneck: r must be > 0 (got {})", r);
}

BottleneckConfig BottleneckConfig::from_json(const nlohmann::json& j) {
  BottleneckConfig c;
  read_key(j, "placement", c.placement);
  read_key(j, "insertion", c.insertion);
  read_key(j, "composition", c.composition);
  read_key(j, "scaling", c.scaling);
  read_key(j, "r", c.r);
  read_key(j, "activation", c.activation);
  read_key(j, "init", c.init);
  c.validate();
  return c;
}

nlohmann::json BottleneckConfig::to_json() const {
  return {{"placement", placement},     {"insertion", insertion}, {"composition", composition},
          {"scaling", scaling},         {"r", r},                 {"activation", activation},
          {"init", init}};
}

namespace {

class BottleneckAdapter : public SublayerMethod {
 public:
  BottleneckAdapter(const BottleneckConfig& c, int64_t d) : c_(c) {
    adapter_down = register_module("adapter_down", torch::nn::Linear(d, c.r));
    adapter_up = register_module("adapter_up", torch::nn::Linear(c.r, d));
    if (c.composition == "gated") adapter_gate = register_module("adapter_gate", torch::nn::Linear(d, 1));
    torch::NoGradGuard no_grad;
    if (c.init == "lora") {  // down keeps nn.Linear's Kaiming-uniform; Δh = 0 at start
      adapter_up->weight.zero_();
    } else {  // Houlsby: weights ~ N(0, 1e-2) truncated at 2σ, so the adapter starts near identity
      for (auto* w : {&adapter_down->weight, &adapter_up->weight}) w->normal_(0.0, 1e-2).clamp_(-2e-2, 2e-2);
    }
    adapter_down->bias.zero_();
    adapter_up->bias.zero_();
    if (adapter_gate) {
      adapter_gate->weight.zero_();
      adapter_gate->bias.zero_();
    }
  }

  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& h) override {
    const torch::Tensor& src = c_.insertion == "parallel" ? x : h;
    torch::Tensor delta = adapter_up(activate(adapter_down(src)));
    if (c_.composition == "add") return h + delta;
    if (c_.composition == "scaled") return h + delta * c_.scaling;
    torch::Tensor gate = torch::sigmoid(adapter_gate(src));
    return h * (1 - gate) + delta * gate;
  }

  torch::nn::Linear adapter_down{nullptr}, adapter_up{nullptr}, adapter_gate{nullptr};

 private:
  torch::Tensor activate(const torch::Tensor& t) const {
    if (c_.activation == "relu") return torch::relu(t);
    if (c_.activation == "tanh") return torch::tanh(t);
    if (c_.activation == "gelu") return torch::gelu(t);
    return t;
  }
  BottleneckConfig c_;
};

class Bottleneck : public Method {
 public:
  explicit Bottleneck(BottleneckConfig c) : config_(std::move(c)) { config_.validate(); }
  std::string type() const override { return "bottleneck"; }
  nlohmann::json config() const override { return config_.to_json(); }

  void attach(Model& model) override {
    const torch::Tensor ref = model.reference_weight();
    for (auto& site : sublayer_sites(model, config_.placement)) {
      auto m = std::make_shared<BottleneckAdapter>(config_, model.arch().hidden_size);
      m->to(ref.device(), ref.scalar_type());
      modules_.attach(adapter_name(), type(), site, m);
    }
  }

  void detach(Model&) override {
    modules_.detach_all(adapter_name(), type());
  }

  std::vector<MethodTensor> tensors() override {
    return modules_.tensors();
  }

 private:
  BottleneckConfig config_;
  SiteModules<SublayerSite, BottleneckAdapter> modules_;
};

}  // namespace

std::shared_ptr<Method> make_bottleneck(const BottleneckConfig& config) { return std::make_shared<Bottleneck>(config); }

}  // namespace peft
