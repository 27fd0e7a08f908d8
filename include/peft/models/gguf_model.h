#pragma once
// Loading a llama.cpp GGUF decoder as a Hugging Face checkpoint: the config HF's config.json would
// hold for the model (LlamaForCausalLM), its tensors under HF names and layouts, dequantized once
// to the requested dtype, and the tokenizer metadata. Tensors and config match what HF transformers'
// GGUF loader (from_pretrained(..., gguf_file=...)) produces, including undoing the row permutation
// llama.cpp's converter applies to the Q and K projections. See docs/gguf.md.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "peft/io/gguf.h"

namespace peft {

// The tokenizer.* metadata of a GGUF file, copied out. Absent keys stay empty / unset.
struct GgufTokenizer {
  std::string model;                  // tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama" (SentencePiece), ...
  std::string pre;                    // tokenizer.ggml.pre: pre-tokenizer name ("smollm", "llama-bpe", ...)
  std::vector<std::string> tokens;    // id -> token text
  std::vector<int32_t> token_types;   // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<float> scores;          // SentencePiece scores
  std::vector<std::string> merges;    // BPE merges, "left right"
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id, unk_token_id;
  std::optional<bool> add_bos_token, add_eos_token, add_space_prefix;
  std::string chat_template;          // tokenizer.chat_template (Jinja)
};

struct GgufModel {
  std::string path;
  std::string architecture;                     // general.architecture
  nlohmann::json config;                        // as HF's config.json
  std::map<std::string, torch::Tensor> tensors;  // HF names (no lm_head.weight when embeddings are tied)
  std::vector<std::string> unmapped;            // GGUF tensors with no HF counterpart, not loaded
  GgufTokenizer tokenizer;

  const torch::Tensor& tensor(const std::string& name) const;  // throws naming the file and tensor
};

// Reads, validates and dequantizes `path` (architecture "llama"; other architectures are an error
// naming the file). `dtype` must be a floating type; every tensor is dequantized straight into its
// output (no second full copy). Throws peft::Error naming the file and the key or tensor at fault:
// missing or mistyped metadata, missing tensors, shapes that disagree with the config, tensor types
// without a dequantizer.
GgufModel load_gguf_model(const std::string& path, torch::ScalarType dtype = torch::kFloat32);

// The pieces of load_gguf_model, for callers that want metadata without the tensors.
nlohmann::json gguf_hf_config(const io::GgufFile& file);
GgufTokenizer gguf_tokenizer(const io::GgufFile& file);
// HF name of a GGUF tensor name of a llama model ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"), or "" when there is none (e.g. "rope_freqs.weight").
std::string gguf_to_hf_name(const std::string& gguf_name);

}  // namespace peft
