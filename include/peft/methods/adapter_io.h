#pragma once
// Adapter folders in HF PEFT's on-disk format:
//   adapter_config.json        peft_type, task_type "SEQ_CLS", the method's config keys, modules_to_save
//   adapter_model.safetensors  the method's tensors under PEFT's key names + the classifier head
// LoRA, IA3 and prefix tuning are byte-for-byte PEFT's layout (they load in the `peft` package and
// PEFT's folders load here). Methods PEFT lacks use the same shape with our own peft_type values;
// several methods at once are saved as peft_type "MULTI_METHOD" with a "methods" list.
// Older PEFT folders with adapter_model.bin (torch.save zip) load too; safetensors is preferred.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "peft/methods/adapted_model.h"

namespace peft {

// The adapter_config.json content for the attached methods.
nlohmann::json adapter_config(AdaptedModel& model, const std::string& base_model_name_or_path);

// Writes both files (atomically) into `dir`, creating it.
void save_adapter(AdaptedModel& model, const std::string& dir, const std::string& base_model_name_or_path = "");

// Attaches the methods described by dir/adapter_config.json to `model` (which must have none yet)
// and loads their tensors and the head. Throws peft::Error for unsupported methods, missing or
// unused tensors and shape mismatches (an adapter made for another base model).
void load_adapter(AdaptedModel& model, const std::string& dir);

// The number of labels of the classifier head an adapter folder carries, if it carries one (so that a
// base checkpoint can be loaded with a matching head before load_adapter).
std::optional<int64_t> adapter_num_labels(const std::string& dir);

}  // namespace peft
