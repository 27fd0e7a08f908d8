#pragma once
// A PEFT LoRA adapter folder as a llama.cpp LoRA adapter (GGUF, `llama-cli --lora FILE`), for LLaMA-family
// bases: general.type "adapter", adapter.type "lora", adapter.lora.alpha, and per target module the
// tensors "<gguf base tensor>.lora_a" (r x in) and ".lora_b" (out x r) in F32. The rows of q_proj/k_proj's
// B are permuted as llama.cpp's converter permutes the base's Q/K weights, and rsLoRA's scale is carried
// in alpha (llama.cpp scales by alpha / r).
#include <string>

#include <nlohmann/json.hpp>

namespace peft {

// `base_config` is the base model's HF config (LlamaForCausalLM). Throws peft::Error naming the adapter
// folder or tensor: not LoRA, a target llama.cpp has no tensor for, shapes that do not fit the base.
void export_gguf_lora(const std::string& adapter_dir, const nlohmann::json& base_config, const std::string& out_path);

// The GGUF tensor name (without ".weight") of an HF module path of a LLaMA model:
// "model.layers.3.self_attn.q_proj" -> "blk.3.attn_q"; "" when llama.cpp has none.
std::string gguf_module_name(const std::string& hf_module);

}  // namespace peft
