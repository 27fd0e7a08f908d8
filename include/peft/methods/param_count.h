#pragma once
// Parameter accounting: trainable parameters, % of the base model, per-site breakdown.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/adapted_model.h"

namespace peft {

struct SiteParams {
  std::string site;    // module path, "classifier" or "prompt_encoder"
  int64_t params = 0;  // trainable parameters there
};

struct ParamReport {
  int64_t base = 0;       // parameters of the base model
  int64_t trainable = 0;  // parameters that receive gradients (method tensors + head)
  int64_t added = 0;      // parameters the methods added to the model (not part of base)
  int64_t inference = 0;  // what the task keeps for inference: trainable, with AdaMix's experts averaged to one
  std::vector<SiteParams> sites;  // in model order
  double percent_of_base() const { return base > 0 ? 100.0 * double(trainable) / double(base) : 0.0; }
  nlohmann::json to_json() const;
};

ParamReport count_parameters(AdaptedModel& model);

}  // namespace peft
