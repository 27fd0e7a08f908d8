#pragma once
// Typed view of a Hugging Face config.json for decoder-only language models: GPT-2 and the LLaMA family
// (SmolLM2, TinyLlama, Llama 2/3, Mistral-style configs without sliding window). Fields that change the
// computation are kept; the JSON itself is kept too, for merged exports.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/models/encoder_config.h"  // Activation

namespace peft {

enum class DecoderFamily { Gpt2, Llama };

// How rotary frequencies are rescaled for long contexts (config.json's rope_scaling).
struct RopeScaling {
  std::string type = "default";  // default | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct DecoderConfig {
  DecoderFamily family = DecoderFamily::Llama;
  std::string model_type = "llama";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 2048;
  Activation hidden_act = Activation::Silu;
  double norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false, mlp_bias = false;  // LLaMA
  double embedding_dropout = 0, attention_dropout = 0, residual_dropout = 0;
  bool scale_attn_weights = true;  // GPT-2
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1, pad_token_id = -1;  // -1: none
  nlohmann::json raw;                             // the config.json it came from

  void validate(const std::string& source) const;
};

// Whether a config.json describes a decoder we implement (by model_type).
bool is_decoder_config(const nlohmann::json& j);
DecoderConfig parse_decoder_config(const nlohmann::json& j, const std::string& source);

}  // namespace peft
