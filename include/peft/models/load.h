#pragma once
// Building BERT/RoBERTa models from a Hugging Face folder with the checkpoint's weights.
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "peft/models/encoder.h"

namespace peft {

struct LoadOptions {
  std::optional<int64_t> num_labels;  // overrides config.json (a new head is then initialised)
  std::optional<ProblemType> problem_type;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat;  // weights stored as F16/BF16 are converted
};

// What loading did beyond copying tensors: heads initialised from scratch, checkpoint tensors not used.
struct LoadReport {
  std::string model_dir;
  std::vector<std::string> initialised;  // e.g. classifier.weight for a base checkpoint
  std::vector<std::string> unused;       // e.g. cls.predictions.* of a pretraining checkpoint
};

// HF's initialisation: normal(0, initializer_range) for linear/embedding weights, zero biases, LayerNorm 1/0.
void init_encoder_weights(torch::nn::Module& module, const EncoderConfig& config);

EncoderConfig load_config_for(const std::string& model, const LoadOptions& options = {});
SequenceClassifier load_sequence_classifier(const std::string& model, const LoadOptions& options = {},
                                            LoadReport* report = nullptr);
// Decoders (GPT-2, LLaMA family) from an HF folder or a GGUF file / packaged GGUF model name.
class CausalLM;
std::shared_ptr<CausalLM> load_causal_lm(const std::string& model, const LoadOptions& options = {},
                                         LoadReport* report = nullptr);
// Whether `model` names a decoder (a GGUF file, or a folder whose config.json has a decoder model_type).
bool is_decoder_model(const std::string& model);

EncoderModel load_encoder_model(const std::string& model, const LoadOptions& options = {},
                                LoadReport* report = nullptr);

}  // namespace peft
