#pragma once
// Typed view of a Hugging Face config.json for BERT-family encoders (BERT, RoBERTa).
// Only fields that change the computation or the head are kept; unknown fields are ignored.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace peft {

enum class EncoderFamily { Bert, Roberta };
enum class Activation { Gelu, GeluTanh, Relu, Silu, Tanh };
enum class ProblemType { Unset, Regression, SingleLabel, MultiLabel };

struct EncoderConfig {
  EncoderFamily family = EncoderFamily::Bert;
  std::string model_type = "bert";
  std::vector<std::string> architectures;
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  Activation hidden_act = Activation::Gelu;
  std::string hidden_act_name = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double classifier_dropout = -1;  // < 0: use hidden_dropout_prob, as HF does for null
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;
  ProblemType problem_type = ProblemType::Unset;
  std::map<int64_t, std::string> id2label;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool is_regression() const {
    return problem_type == ProblemType::Regression || (problem_type == ProblemType::Unset && num_labels == 1);
  }
  // Throws peft::Error naming `source` when a value is out of range or inconsistent.
  void validate(const std::string& source) const;
};

// Parses the JSON text of a config.json; `source` names the file in error messages.
EncoderConfig parse_encoder_config(const nlohmann::json& j, const std::string& source);
EncoderConfig load_encoder_config(const std::string& path);
// Serialises back to an HF-compatible config.json object (what `peft merge` writes).
nlohmann::json encoder_config_to_json(const EncoderConfig& config);

std::string activation_name(Activation act);

}  // namespace peft
