#include "peft/methods/baselines.h"

#include "peft/methods/model_params.h"

namespace peft {
namespace {

// Trains the base parameters whose names `select` accepts (the head is handled by trains_head()).
class BaseSubset : public Method {
 public:
  BaseSubset(std::string type, std::function<bool(const std::string&)> select)
      : type_(std::move(type)), select_(std::move(select)) {}

  std::string type() const override { return type_; }
  nlohmann::json config() const override { return nlohmann::json::object(); }

  void attach(Model& model) override {
    chosen_.clear();
    for (auto& [name, p] : base_named_parameters(model)) {
      if (is_head_parameter(model, name) || !select_(name)) continue;
      chosen_.push_back({name.substr(0, name.rfind('.')), kModelKeyPrefix + name, p});
    }
  }
  void detach(Model&) override { chosen_.clear(); }
  std::vector<MethodTensor> tensors() override { return chosen_; }
  bool mergeable() const override { return true; }  // trains base tensors in place: nothing to fold

 private:
  std::string type_;
  std::function<bool(const std::string&)> select_;
  std::vector<MethodTensor> chosen_;
};

bool is_bias(const std::string& name) { return name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0; }

}  // namespace

std::shared_ptr<Method> make_bitfit() { return std::make_shared<BaseSubset>("bitfit", is_bias); }
std::shared_ptr<Method> make_classifier_only() {
  return std::make_shared<BaseSubset>("classifier_only", [](const std::string&) { return false; });
}
std::shared_ptr<Method> make_full_finetuning() {
  return std::make_shared<BaseSubset>("full", [](const std::string&) { return true; });
}

}  // namespace peft
