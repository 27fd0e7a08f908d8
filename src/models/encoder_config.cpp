#include "peft/models/encoder_config.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"

namespace peft {
namespace {

Activation parse_activation(const std::string& name, const std::string& source) {
  // HF names: "gelu" is the exact erf form; "gelu_new", "gelu_pytorch_tanh" and "gelu_fast" the tanh form.
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "relu") return Activation::Relu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "tanh") return Activation::Tanh;
  fail("{}: unsupported hidden_act \"{}\" (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, tanh)",
       source, name);
}

template <typename T>
void read(const nlohmann::json& j, const char* key, T& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field \"{}\" has the wrong type ({})", source, key, it->dump());
  }
}

}  // namespace

std::string activation_name(Activation act) {
  switch (act) {
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_new";
    case Activation::Relu: return "relu";
    case Activation::Silu: return "silu";
    case Activation::Tanh: return "tanh";
  }
  return "gelu";
}

void EncoderConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail("{}: {} must be positive, got {}", source, name, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("num_labels", num_labels);
  if (type_vocab_size < 0) fail("{}: type_vocab_size must be >= 0, got {}", source, type_vocab_size);
  if (hidden_size % num_attention_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", source, hidden_size, num_attention_heads);
  if (pad_token_id < 0 || pad_token_id >= vocab_size)
    fail("{}: pad_token_id {} outside the vocabulary (size {})", source, pad_token_id, vocab_size);
  if (layer_norm_eps <= 0) fail("{}: layer_norm_eps must be positive", source);
}

EncoderConfig parse_encoder_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: config is not a JSON object", source);
  EncoderConfig c;
  read(j, "model_type", c.model_type, source);
  if (c.model_type == "bert") {
    c.family = EncoderFamily::Bert;
  } else if (c.model_type == "roberta" || c.model_type == "xlm-roberta" || c.model_type == "camembert") {
    c.family = EncoderFamily::Roberta;
    c.pad_token_id = 1;
    c.type_vocab_size = 1;
    c.layer_norm_eps = 1e-5;
  } else {
    fail("{}: unknown architecture model_type \"{}\" (supported: bert, roberta)", source,
         c.model_type.empty() ? "<missing>" : c.model_type);
  }
  read(j, "architectures", c.architectures, source);
  read(j, "vocab_size", c.vocab_size, source);
  read(j, "hidden_size", c.hidden_size, source);
  read(j, "num_hidden_layers", c.num_hidden_layers, source);
  read(j, "num_attention_heads", c.num_attention_heads, source);
  read(j, "intermediate_size", c.intermediate_size, source);
  read(j, "hidden_act", c.hidden_act_name, source);
  c.hidden_act = parse_activation(c.hidden_act_name, source);
  read(j, "hidden_dropout_prob", c.hidden_dropout_prob, source);
  read(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, source);
  read(j, "classifier_dropout", c.classifier_dropout, source);
  read(j, "max_position_embeddings", c.max_position_embeddings, source);
  read(j, "type_vocab_size", c.type_vocab_size, source);
  read(j, "layer_norm_eps", c.layer_norm_eps, source);
  read(j, "initializer_range", c.initializer_range, source);
  read(j, "pad_token_id", c.pad_token_id, source);

  std::string position_type = "absolute";
  read(j, "position_embedding_type", position_type, source);
  if (position_type != "absolute")
    fail("{}: position_embedding_type \"{}\" is not supported (only absolute)", source, position_type);

  // Labels: id2label decides num_labels when present, as in HF PretrainedConfig.
  if (auto it = j.find("id2label"); it != j.end() && it->is_object()) {
    for (auto& [key, value] : it->items()) {
      try {
        c.id2label[std::stoll(key)] = value.get<std::string>();
      } catch (const std::exception&) {
        fail("{}: id2label entry \"{}\" is not an integer -> string pair", source, key);
      }
    }
    c.num_labels = static_cast<int64_t>(c.id2label.size());
  }
  read(j, "num_labels", c.num_labels, source);
  std::string problem;
  read(j, "problem_type", problem, source);
  if (problem == "regression") c.problem_type = ProblemType::Regression;
  else if (problem == "single_label_classification") c.problem_type = ProblemType::SingleLabel;
  else if (problem == "multi_label_classification") c.problem_type = ProblemType::MultiLabel;
  else if (!problem.empty()) fail("{}: unknown problem_type \"{}\"", source, problem);

  c.validate(source);
  return c;
}

EncoderConfig load_encoder_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open config file", path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON ({})", path, e.what());
  }
  return parse_encoder_config(j, path);
}

nlohmann::json encoder_config_to_json(const EncoderConfig& c) {
  nlohmann::json j;
  j["model_type"] = c.model_type;
  if (!c.architectures.empty()) j["architectures"] = c.architectures;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["hidden_act"] = c.hidden_act_name;
  j["hidden_dropout_prob"] = c.hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = c.attention_probs_dropout_prob;
  if (c.classifier_dropout >= 0) j["classifier_dropout"] = c.classifier_dropout;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["type_vocab_size"] = c.type_vocab_size;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["initializer_range"] = c.initializer_range;
  j["pad_token_id"] = c.pad_token_id;
  j["position_embedding_type"] = "absolute";
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (auto& [id, name] : c.id2label) {
    id2label[std::to_string(id)] = name;
    label2id[name] = id;
  }
  if (!c.id2label.empty()) {
    j["id2label"] = id2label;
    j["label2id"] = label2id;
  }
  switch (c.problem_type) {
    case ProblemType::Regression: j["problem_type"] = "regression"; break;
    case ProblemType::SingleLabel: j["problem_type"] = "single_label_classification"; break;
    case ProblemType::MultiLabel: j["problem_type"] = "multi_label_classification"; break;
    case ProblemType::Unset: break;
  }
  return j;
}

}  // namespace peft
