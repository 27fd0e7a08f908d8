#include "peft/models/decoder_config.h"

#include <set>

#include "peft/error.h"

namespace peft {
namespace {

template <typename T>
void read_field(const nlohmann::json& j, const char* key, T& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field \"{}\" has the wrong type ({})", source, key, it->dump());
  }
}

// The LLaMA-style model types whose computation is exactly LLaMA's.
const std::set<std::string>& llama_types() {
  static const std::set<std::string> types = {"llama", "mistral", "smollm", "smollm2"};
  return types;
}

Activation decoder_activation(const std::string& name, const std::string& source) {
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "gelu") return Activation::Gelu;
  if (name == "relu") return Activation::Relu;
  fail("{}: unsupported activation \"{}\"", source, name);
}

RopeScaling parse_rope_scaling(const nlohmann::json& j, const std::string& source) {
  RopeScaling r;
  if (!j.is_object()) fail("{}: rope_scaling must be an object or null", source);
  std::string type = j.value("rope_type", j.value("type", std::string("default")));
  if (type != "default" && type != "linear" && type != "llama3")
    fail("{}: rope_scaling type \"{}\" is not supported (supported: default, linear, llama3)", source, type);
  r.type = type;
  read_field(j, "factor", r.factor, source);
  read_field(j, "low_freq_factor", r.low_freq_factor, source);
  read_field(j, "high_freq_factor", r.high_freq_factor, source);
  read_field(j, "original_max_position_embeddings", r.original_max_position_embeddings, source);
  if (!(r.factor > 0)) fail("{}: rope_scaling factor must be > 0", source);
  return r;
}

}  // namespace

bool is_decoder_config(const nlohmann::json& j) {
  const std::string type = j.value("model_type", std::string());
  return type == "gpt2" || llama_types().count(type) > 0;
}

DecoderConfig parse_decoder_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: config is not a JSON object", source);
  DecoderConfig c;
  c.raw = j;
  read_field(j, "model_type", c.model_type, source);
  if (c.model_type == "gpt2") {
    c.family = DecoderFamily::Gpt2;
    read_field(j, "vocab_size", c.vocab_size, source);
    read_field(j, "n_embd", c.hidden_size, source);
    read_field(j, "n_layer", c.num_hidden_layers, source);
    read_field(j, "n_head", c.num_attention_heads, source);
    c.num_key_value_heads = c.num_attention_heads;
    c.intermediate_size = 4 * c.hidden_size;
    read_field(j, "n_inner", c.intermediate_size, source);
    read_field(j, "n_positions", c.max_position_embeddings, source);
    std::string act = "gelu_new";
    read_field(j, "activation_function", act, source);
    c.hidden_act = decoder_activation(act, source);
    c.norm_eps = 1e-5;
    read_field(j, "layer_norm_epsilon", c.norm_eps, source);
    read_field(j, "embd_pdrop", c.embedding_dropout, source);
    read_field(j, "attn_pdrop", c.attention_dropout, source);
    read_field(j, "resid_pdrop", c.residual_dropout, source);
    read_field(j, "scale_attn_weights", c.scale_attn_weights, source);
    c.tie_word_embeddings = j.value("tie_word_embeddings", true);
    for (const char* unsupported : {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"})
      if (j.value(unsupported, false)) fail("{}: {} is not supported", source, unsupported);
  } else if (llama_types().count(c.model_type)) {
    c.family = DecoderFamily::Llama;
    read_field(j, "vocab_size", c.vocab_size, source);
    read_field(j, "hidden_size", c.hidden_size, source);
    read_field(j, "num_hidden_layers", c.num_hidden_layers, source);
    read_field(j, "num_attention_heads", c.num_attention_heads, source);
    c.num_key_value_heads = c.num_attention_heads;
    read_field(j, "num_key_value_heads", c.num_key_value_heads, source);
    read_field(j, "intermediate_size", c.intermediate_size, source);
    read_field(j, "max_position_embeddings", c.max_position_embeddings, source);
    std::string act = "silu";
    read_field(j, "hidden_act", act, source);
    c.hidden_act = decoder_activation(act, source);
    read_field(j, "rms_norm_eps", c.norm_eps, source);
    read_field(j, "rope_theta", c.rope_theta, source);
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      c.rope_scaling = parse_rope_scaling(j["rope_scaling"], source);
    read_field(j, "tie_word_embeddings", c.tie_word_embeddings, source);
    read_field(j, "attention_bias", c.attention_bias, source);
    read_field(j, "mlp_bias", c.mlp_bias, source);
    read_field(j, "attention_dropout", c.attention_dropout, source);
    if (j.contains("sliding_window") && !j["sliding_window"].is_null())
      fail("{}: sliding_window attention is not supported", source);
    if (j.value("pretraining_tp", 1) != 1) fail("{}: pretraining_tp other than 1 is not supported", source);
  } else {
    fail("{}: unknown decoder architecture model_type \"{}\" (supported: gpt2, llama, mistral)", source, c.model_type);
  }
  if (c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
  read_field(j, "head_dim", c.head_dim, source);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    if (j["eos_token_id"].is_array()) read_field(j, "eos_token_id", c.eos_token_ids, source);
    else c.eos_token_ids = {j["eos_token_id"].get<int64_t>()};
  }
  read_field(j, "bos_token_id", c.bos_token_id, source);
  read_field(j, "pad_token_id", c.pad_token_id, source);
  c.validate(source);
  return c;
}

void DecoderConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail("{}: {} must be positive, got {}", source, name, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("head_dim", head_dim);
  if (num_attention_heads % num_key_value_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, num_attention_heads,
         num_key_value_heads);
  if (family == DecoderFamily::Gpt2 && hidden_size % num_attention_heads != 0)
    fail("{}: n_embd {} is not a multiple of n_head {}", source, hidden_size, num_attention_heads);
  if (head_dim % 2 != 0 && family == DecoderFamily::Llama) fail("{}: head_dim must be even for rotary embeddings", source);
}

}  // namespace peft
