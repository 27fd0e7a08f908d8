#pragma once
// AdaMix (Wang et al., EMNLP 2022): a mixture of M adaptation modules at every adapted site, with
// no learned gate.
//   training   every forward pass, each site independently draws one down and one up projection
//              (LoRA: one A and one B) uniformly at random (torch's CPU generator, so the trainer's
//              seed makes runs reproducible); optional consistency term between two routed passes
//   inference  the experts' weights are averaged (E = mean_i E_i, D = mean_j D_j): one module,
//              the cost of a single adapter; a random route or an ensemble of k routes for evaluation
//   sharing    one projection side may be shared by all experts (authors: share up; LoRA: share B)
// Experts start as copies of one initialised module (as in the authors' code) and diverge through
// routing. Two method types: `adamix` (bottleneck adapters, peft_type ADAMIX) and `adamix_lora`
// (LoRA, peft_type ADAMIX_LORA). See docs/adamix.md.
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/adapted_model.h"
#include "peft/methods/consistency.h"
#include "peft/methods/method.h"
#include "peft/methods/targets.h"

namespace peft {

struct AdaMixConfig {
  int64_t num_experts = 4;               // M
  int64_t r = 24;                        // bottleneck; BERT-base's 48 scaled to MiniLM's hidden 384 (d/16)
  std::string share = "up";              // none | up | down: projection side all experts share
  std::string placement = "ffn";         // attention | ffn | both (authors: after the FFN, like Pfeiffer)
  std::string insertion = "sequential";  // sequential | parallel
  std::string composition = "add";      // add | scaled
  double scaling = 1.0;
  std::string activation = "relu";       // relu | tanh | identity | gelu
  std::string init = "near_identity";    // near_identity | lora (down Kaiming, up zero)
  ConsistencyOptions consistency;

  void validate() const;
  static AdaMixConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

struct AdaMixLoraConfig {
  int64_t num_experts = 4;
  int64_t r = 4;
  double lora_alpha = 32;
  double lora_dropout = 0.0;
  TargetModules target_modules = TargetModules::list({"query", "value"});
  bool default_targets = true;  // not given: if these fit no module, LoRA's default for the model type
  std::string share = "B";  // none | A | B
  ConsistencyOptions consistency;

  double scaling() const { return lora_alpha / double(r); }
  void validate() const;
  static AdaMixLoraConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

std::shared_ptr<Method> make_adamix(const AdaMixConfig& config);
std::shared_ptr<Method> make_adamix_lora(const AdaMixLoraConfig& config);

// How a mixture computes outside training.
struct AdaMixMode {
  enum Kind { Merged, Random, Ensemble };
  Kind kind = Merged;  // merged: averaged weights (default); random: a fresh random route per forward
  int64_t k = 1;       // ensemble: probabilities averaged over k forwards with independent routes

  static AdaMixMode parse(const std::string& text);  // "merged" | "random" | "ensemble:K"
  std::string to_string() const;
};

// The mixture methods attached to `model` (empty when none).
std::vector<std::shared_ptr<Method>> adamix_methods(AdaptedModel& model);
// Sets the evaluation mode of every mixture method; throws when the model has none.
void set_adamix_mode(AdaptedModel& model, const AdaMixMode& mode);

}  // namespace peft
