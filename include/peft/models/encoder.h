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
#include "peft/models/sites.h"

namespace peft {

// One batch of token ids. attention_mask and token_type_ids may be undefined (all ones / all zeros).
struct EncoderInput {
  torch::Tensor input_ids;       // (batch, tokens) int64
  torch::Tensor attention_mask;  // (batch, tokens) 1 = real token
  torch::Tensor token_type_ids;  // (batch, tokens)
  // Skip the work on padding tokens: trailing all-padding columns are dropped, and the position-wise
  // layers (linear layers, LayerNorm, adapters) run on real tokens only. Real tokens never attend to
  // padding, so their vectors do not change; padding positions come back as zeros instead of HF's
  // (meaningless) padding vectors. Set it where padding vectors are ignored: classification heads and
  // masked mean pooling do it themselves.
  bool skip_padding_columns = false;
};

struct EncoderOutput {
  torch::Tensor last_hidden_state;  // (batch, tokens, hidden)
  torch::Tensor pooled;             // (batch, hidden) BERT pooler output, undefined without a pooler
};

// Every adaptation site of a model, keyed by full module path.
struct SiteIndex {
  std::map<std::string, std::shared_ptr<LinearSite>> linear;
  std::map<std::string, std::shared_ptr<SublayerSite>> sublayer;
  std::map<std::string, std::shared_ptr<AttentionKVSite>> attention_kv;
};

class EmbeddingsImpl : public torch::nn::Module {
 public:
  explicit EmbeddingsImpl(const EncoderConfig& config);
  // `past_length` shifts position ids (prefix tokens act as past tokens, as in HF).
  torch::Tensor forward(const EncoderInput& in, int64_t past_length);

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
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask, const TokenLayout& layout = {});

  // HF's nesting: attention.self.{query,key,value}, attention.output.{dense,LayerNorm},
  // intermediate.dense, output.{dense,LayerNorm}. Plain holder modules keep those names.
  std::shared_ptr<LinearSite> query, key, value, attention_dense, intermediate_dense, output_dense;
  torch::nn::LayerNorm attention_norm{nullptr}, output_norm{nullptr};
  std::shared_ptr<SublayerSite> attention_adapters, output_adapters;
  std::shared_ptr<AttentionKVSite> kv_site;

 private:
  torch::Tensor attention(const torch::Tensor& hidden, const torch::Tensor& additive_mask, const TokenLayout& layout);
  EncoderConfig config_;
};
TORCH_MODULE(Layer);

// BertModel / RobertaModel: embeddings, encoder layers and (optionally) the pooler.
class EncoderModelImpl : public torch::nn::Module {
 public:
  // `path_prefix` is the module path of this encoder inside its parent ("bert." or "" for a bare model);
  // site paths include it so method targets match full HF names.
  EncoderModelImpl(const EncoderConfig& config, bool with_pooler, const std::string& path_prefix = "");
  EncoderOutput forward(const EncoderInput& in);

  const EncoderConfig& config() const { return config_; }
  bool has_pooler() const { return pooler_dense != nullptr; }
  void collect_sites(SiteIndex& index) const;

  Embeddings embeddings{nullptr};
  std::vector<Layer> layers;
  std::shared_ptr<LinearSite> pooler_dense;
  // Number of virtual past tokens in front of the input (set by prefix tuning); shifts position ids.
  int64_t past_length = 0;

 private:
  EncoderConfig config_;
  std::string prefix_;
};
TORCH_MODULE(EncoderModel);

// BertForSequenceClassification / RobertaForSequenceClassification (num_labels = 1: regression).
class SequenceClassifierImpl : public torch::nn::Module {
 public:
  explicit SequenceClassifierImpl(const EncoderConfig& config);
  torch::Tensor forward(const EncoderInput& in);  // logits (batch, num_labels)

  const EncoderConfig& config() const { return config_; }
  // "bert" or "roberta": the name HF gives the encoder inside *For* models.
  std::string base_prefix() const;
  SiteIndex sites() const;

  EncoderModel encoder{nullptr};
  // BERT: classifier = Linear. RoBERTa: classifier.dense + classifier.out_proj.
  std::shared_ptr<LinearSite> classifier, classifier_dense, classifier_out_proj;
  std::vector<std::string> head_parameter_prefixes() const;  // e.g. {"classifier."}

 private:
  EncoderConfig config_;
};
TORCH_MODULE(SequenceClassifier);

// Classification / regression loss as HF computes it (MSE for regression, cross-entropy otherwise).
torch::Tensor sequence_loss(const EncoderConfig& config, const torch::Tensor& logits, const torch::Tensor& labels);

// Mean of the token vectors over the attention mask, then L2 normalisation (sentence-transformers' pooling).
torch::Tensor mean_pool(const torch::Tensor& last_hidden_state, const torch::Tensor& attention_mask,
                        bool normalize = true);

}  // namespace peft
