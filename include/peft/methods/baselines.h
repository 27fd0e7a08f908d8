#pragma once
// Baselines that add no modules, they only choose which base parameters train:
//   bitfit           every bias (linear layers and LayerNorms) + the classifier head (Ben Zaken et al. 2022)
//   classifier_only  only the classifier head
//   full             every parameter (full fine-tuning)
// Saved in the adapter folder shape under our own peft_type values (see docs/methods.md).
#include <memory>

#include "peft/methods/method.h"

namespace peft {

std::shared_ptr<Method> make_bitfit();
std::shared_ptr<Method> make_classifier_only();
std::shared_ptr<Method> make_full_finetuning();

}  // namespace peft
