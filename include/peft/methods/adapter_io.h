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

// An adapter folder loaded as one of several tasks on a shared model: its methods sit in the sites'
// banks under the adapter name, and the head it carries (HF parameter name -> tensor, possibly with
// its own label count) is returned instead of replacing the model's.
struct NamedAdapter {
  std::vector<std::shared_ptr<Method>> methods;
  std::vector<std::pair<std::string, torch::Tensor>> head;
};
// Attaches dir's methods to `model` under adapter `name` and loads their tensors. Same checks and
// errors as load_adapter; on error nothing stays attached.
NamedAdapter load_named_adapter(Model& model, const std::string& dir, const std::string& name);
// The number of labels of the classifier head an adapter folder carries, if it carries one (so that a
// base checkpoint can be loaded with a matching head before load_adapter).
std::optional<int64_t> adapter_num_labels(const std::string& dir);

}  // namespace peft
