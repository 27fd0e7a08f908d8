#pragma once
// BERT and RoBERTa encoders, written once, with Hugging Face module names and explicit adaptation sites.
// Parameter names match HF exactly (e.g. "bert.encoder.layer.0.attention.self.query.weight"), so HF
// checkpoints and PEFT adapter files map onto them without renaming tables.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>

#include "peft/models/encoder_config.h"
#include "peft/models/model.h"

namespace peft {

struct EncoderOutput {
  torch::Tensor last_hidden_state;  // (batch, tokens, hidden)
  torch::Tensor pooled;             // (batch, hidden) BERT pooler output, undefined without a pooler
};

// The architecture-neutral view of an encoder config.
ModelArch encoder_arch(const EncoderConfig& config);

class EmbeddingsImpl : public torch::nn::Module {
 public:
  explicit EmbeddingsImpl(const EncoderConfig& config);
  // `past_length` shifts position ids (prefix tokens act as past tokens, as in HF); `row_past`
  // (batch), when given, shifts each row by its own count and past_length is their maximum.
  torch::Tensor forward(const ModelInput& in, int64_t past_length, const torch::Tensor& row_past = {});

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};

 private:
  EncoderConfig config_;
};
TORCH_MODULE(Embeddings);

// Where the rows of a packed hidden state sit in the padded (batch, tokens) grid. Packed, position-wise
// work runs on (real tokens, hidden); attention scatters back to the grid around its softmax.
struct TokenLayout {
  torch::Tensor index;  // (real) flat positions b * tokens + t of the real tokens; undefined: not packed
  int64_t batch = 0, tokens = 0;

  bool packed() const { return index.defined(); }
  torch::Tensor pack(const torch::Tensor& grid) const;      // (batch, tokens, d) -> (real, d)
  torch::Tensor unpack(const torch::Tensor& packed) const;  // (real, d) -> (batch, tokens, d), zeros at padding
};

class LayerImpl : public torch::nn::Module {
 public:
  LayerImpl(const EncoderConfig& config, const std::string& path, int64_t index);
  // `hidden` is (batch, tokens, hidden), or (real tokens, hidden) when `layout` is packed.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask, const TokenLayout& layout,
                        ForwardContext& context);

  // HF's nesting: attention.self.{query,key,value}, attention.output.{dense,LayerNorm},
  // intermediate.dense, output.{dense,LayerNorm}. Plain holder modules keep those names.
  std::shared_ptr<LinearSite> query, key, value, attention_dense, intermediate_dense, output_dense;
  torch::nn::LayerNorm attention_norm{nullptr}, output_norm{nullptr};
  std::shared_ptr<SublayerSite> attention_adapters, output_adapters;
  std::shared_ptr<AttentionKVSite> kv_site;

 private:
  torch::Tensor attention(const torch::Tensor& hidden, const torch::Tensor& additive_mask, const TokenLayout& layout,
                          ForwardContext& context);
  EncoderConfig config_;
};
TORCH_MODULE(Layer);

// BertModel / RobertaModel: embeddings, encoder layers and (optionally) the pooler.
class EncoderModelImpl : public torch::nn::Module {
 public:
  // `path_prefix` is the module path of this encoder inside its parent ("bert." or "" for a bare model);
  // site paths include it so method targets match full HF names.
  EncoderModelImpl(const EncoderConfig& config, bool with_pooler, const std::string& path_prefix = "");
  EncoderOutput forward(const ModelInput& in, ForwardContext& context);
  EncoderOutput forward(const ModelInput& in) {
    ForwardContext context;
    return forward(in, context);
  }

  const EncoderConfig& config() const { return config_; }
  bool has_pooler() const { return pooler_dense != nullptr; }
  void collect_sites(SiteIndex& index) const;

  Embeddings embeddings{nullptr};
  std::vector<Layer> layers;
  std::shared_ptr<LinearSite> pooler_dense;

 private:
  EncoderConfig config_;
  std::string prefix_;
};
TORCH_MODULE(EncoderModel);

// BertForSequenceClassification / RobertaForSequenceClassification (num_labels = 1: regression).
class SequenceClassifierImpl : public Model {
 public:
  explicit SequenceClassifierImpl(const EncoderConfig& config);
  using Model::forward;
  torch::Tensor forward(const ModelInput& in, ForwardContext& context) override;  // logits (batch, num_labels)

  const EncoderConfig& config() const { return config_; }
  const ModelArch& arch() const override { return arch_; }
  HeadSpec head() const override;
  SiteIndex sites() const override;
  std::vector<std::string> head_parameter_prefixes() const override { return {"classifier."}; }
  std::string head_module_name() const override { return "classifier"; }
  std::vector<std::string> base_children() const override { return {base_prefix(), "classifier"}; }
  torch::Tensor reference_weight() const override { return encoder->embeddings->word_embeddings->weight; }
  nlohmann::json hf_config() const override;
  // The head's logits on `out` (evaluation, no dropout) with another task's head tensors, by HF
  // parameter name ("classifier.weight", ...; RoBERTa: classifier.dense.*, classifier.out_proj.*):
  // tasks served together on one encoder keep their heads outside it, each with its own label count.
  torch::Tensor head_logits(const EncoderOutput& out, const std::map<std::string, torch::Tensor>& head) const;
  // "bert" or "roberta": the name HF gives the encoder inside *For* models.
  std::string base_prefix() const;

  EncoderModel encoder{nullptr};
  // BERT: classifier = Linear. RoBERTa: classifier.dense + classifier.out_proj.
  std::shared_ptr<LinearSite> classifier, classifier_dense, classifier_out_proj;

 private:
  EncoderConfig config_;
  ModelArch arch_;
};
TORCH_MODULE(SequenceClassifier);

// The head of an encoder config: classification, multi-label or regression.
HeadSpec encoder_head(const EncoderConfig& config);

// Mean of the token vectors over the attention mask, then L2 normalisation (sentence-transformers' pooling).
torch::Tensor mean_pool(const torch::Tensor& last_hidden_state, const torch::Tensor& attention_mask,
                        bool normalize = true);

}  // namespace peft
