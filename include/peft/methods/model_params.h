#pragma once
// The base model's own parameters, apart from anything methods attached (site children, prompt encoder).
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "peft/models/encoder.h"

namespace peft {

// (HF name, tensor) of every parameter of the base model, in module order.
std::vector<std::pair<std::string, torch::Tensor>> base_named_parameters(Model& model);

// Number of base-model parameters (the denominator of "% of base").
int64_t base_parameter_count(Model& model);
// Whether a parameter name belongs to the model's head (trained and saved with methods that train it).
bool is_head_parameter(const Model& model, const std::string& name);

// Freezes the model for PEFT: every parameter (base and method) stops requiring grad except
// `trainable`. Returns nothing; idempotent.
void set_trainable(Model& model, const std::vector<torch::Tensor>& trainable);

}  // namespace peft
