#pragma once
// A PEFT method attached to a model: a validated config plus the modules it places at the model's
// adaptation sites (see peft/models/sites.h). Every method implements this one interface; the
// registry (registry.h) maps its type name and on-disk peft_type to a factory.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "peft/models/model.h"

namespace peft {

// One tensor a method trains and saves. `key` is its name in adapter_model.safetensors
// (PEFT's names where PEFT has the method, e.g. "base_model.model.<module>.lora_A.weight").
// `site` is the module path it belongs to, for per-site parameter accounting.
struct MethodTensor {
  std::string site;
  std::string key;
  torch::Tensor tensor;
};

// PEFT's key prefix for tensors of the wrapped model ("base_model.model." + HF parameter name).
inline const std::string kModelKeyPrefix = "base_model.model.";

class Method {
 public:
  virtual ~Method() = default;

  virtual std::string type() const = 0;         // registry name, e.g. "lora"
  // The adapter (task) this method belongs to; its modules sit in the sites' banks under it, and a
  // forward's RowRouting chooses rows by it. "default" for a model that holds one task.
  const std::string& adapter_name() const { return adapter_; }
  void set_adapter_name(std::string name) { adapter_ = std::move(name); }
  virtual nlohmann::json config() const = 0;    // the config's JSON (keys as in adapter_config.json)

  // Creates the method's modules at the sites it targets. Throws peft::Error when a target matches
  // nothing or a hyper-parameter does not fit the model (e.g. prefix longer than max positions).
  virtual void attach(Model& model) = 0;
  // Removes the modules again (the model is then exactly the base model).
  virtual void detach(Model& model) = 0;

  // Trainable tensors (valid after attach): new method parameters, or base parameters such as
  // biases for BitFit. Saved to and loaded from adapter files under their keys.
  virtual std::vector<MethodTensor> tensors() = 0;
  // Whether the model's head is trained and saved with the method (PEFT modules_to_save).
  virtual bool trains_head() const { return true; }
  // Key prefix of the head's tensors in adapter files (PEFT prefix tuning uses "base_model.").
  virtual std::string head_key_prefix() const { return kModelKeyPrefix; }

  // Folding the method into the base weights (LoRA, IA3). merge() then unmerge() restores them.
  virtual bool mergeable() const { return false; }
  virtual void merge() {}
  virtual void unmerge() {}
  bool merged() const { return merged_; }

  // Called by AdaptedModel::forward before the model runs (diff pruning points the modules'
  // weights at theta + delta here). Calling the model's own forward() directly skips it.
  virtual void before_forward(Model& model) {}

  // After training: precompute what inference needs and drop training-only parts (prefix MLP).
  virtual void finalize() {}

  // Parameters the method keeps for inference (after finalize()); AdaMix trains M experts but
  // infers with their average. Default: the numel of tensors().
  virtual int64_t inference_parameter_count();

  // Methods that run the model their own way (AdaMix: two routed passes plus a consistency term in
  // training, an ensemble of routes in evaluation). `forward` runs the whole model once.
  virtual bool runs_model() const { return false; }
  // Default: the task loss of one forward.
  virtual torch::Tensor training_loss(const std::function<torch::Tensor()>& forward, const HeadSpec& head,
                                      const torch::Tensor& labels);
  // Default: one forward.
  virtual torch::Tensor predict(const std::function<torch::Tensor()>& forward, const HeadSpec& head);

  // Called before saving: tensors as they go to disk (prefix tuning saves its MLP's output).
  virtual std::vector<MethodTensor> saved_tensors() { return tensors(); }
  // Loads tensors saved by saved_tensors(); `lookup` throws naming the key if it is absent.
  virtual void load_tensors(const std::function<torch::Tensor(const std::string&)>& lookup);

 protected:
  bool merged_ = false;

 private:
  std::string adapter_ = "default";
};

// Copies `value` into `target` (no grad), checking shapes; the error names the key and both shapes
// (a mismatch means an adapter made for another base model).
void copy_checked(const torch::Tensor& target, const torch::Tensor& value, const std::string& key);

// Helper for methods whose modules hang off sites: key = "base_model.model." + site path + "." + local name.
void append_module_tensors(std::vector<MethodTensor>& out, const std::string& site_path, torch::nn::Module& module);

// The sublayer sites of `placement` ("attention", "ffn" or "both") in layer order, attention before FFN
// within a layer (the order modules are created in, so seeded initialisations do not depend on the model).
std::vector<std::shared_ptr<SublayerSite>> sublayer_sites(const Model& model, const std::string& placement);

// The modules a method has hung off sites (one per site), with what every such method does to them:
// attach under the method's name, detach them all, list their tensors. Iterates as (site, module) pairs.
template <typename Site, typename Module>
class SiteModules {
 public:
  using Entry = std::pair<std::shared_ptr<Site>, std::shared_ptr<Module>>;

  void attach(const std::string& adapter, const std::string& type, const std::shared_ptr<Site>& site,
              const std::shared_ptr<Module>& module) {
    site->attach(adapter, type, module);
    entries_.emplace_back(site, module);
  }
  void detach_all(const std::string& adapter, const std::string& type) {
    for (auto& [site, module] : entries_) site->detach(adapter, type);
    entries_.clear();
  }
  std::vector<MethodTensor> tensors() const {
    std::vector<MethodTensor> out;
    for (const auto& [site, module] : entries_) append_module_tensors(out, site->path(), *module);
    return out;
  }
  typename std::vector<Entry>::iterator begin() { return entries_.begin(); }
  typename std::vector<Entry>::iterator end() { return entries_.end(); }
  typename std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  typename std::vector<Entry>::const_iterator end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace peft
