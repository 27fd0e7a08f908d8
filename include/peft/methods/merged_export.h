#pragma once
// Writing a merged model: the methods are folded into the weights and the result is saved as a plain
// Hugging Face model folder (model.safetensors with HF names, config.json and tokenizer files copied
// from the base model folder) that transformers loads with from_pretrained.
#include <string>

#include "peft/methods/adapted_model.h"

namespace peft {

// Merges, writes, then unmerges (the in-memory model is left as it was). Throws peft::Error when a
// method cannot be merged (prefix tuning, adapters).
void save_merged_model(AdaptedModel& model, const std::string& base_model_dir, const std::string& out_dir);

}  // namespace peft
