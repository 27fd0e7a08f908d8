#include "peft/models/encoder.h"

#include <algorithm>
#include <limits>

#include <ATen/ops/scaled_dot_product_attention.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>

#include "peft/error.h"

namespace peft {
namespace F = torch::nn::functional;
namespace {

// An empty module that only gives its children HF's nested names ("attention", "self", ...).
std::shared_ptr<torch::nn::Module> holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::Tensor activate(Activation act, const torch::Tensor& x) {
  switch (act) {
    case Activation::Gelu: return torch::gelu(x);
    case Activation::GeluTanh: return torch::gelu(x, "tanh");
    case Activation::Relu: return torch::relu(x);
    case Activation::Silu: return torch::silu(x);
    case Activation::Tanh: return torch::tanh(x);
  }
  return x;
}

torch::nn::LayerNorm layer_norm(int64_t hidden, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(eps));
}

torch::Tensor maybe_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  return F::dropout(x, F::DropoutFuncOptions().p(p).training(true));
}

}  // namespace

// ---- embeddings ------------------------------------------------------------------------------

EmbeddingsImpl::EmbeddingsImpl(const EncoderConfig& config) : config_(config) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(config.vocab_size, config.hidden_size)));
  position_embeddings = register_module(
      "position_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(config.max_position_embeddings, config.hidden_size)));
  if (config.type_vocab_size > 0)
    token_type_embeddings = register_module(
        "token_type_embeddings",
        torch::nn::Embedding(torch::nn::EmbeddingOptions(config.type_vocab_size, config.hidden_size)));
  LayerNorm = register_module("LayerNorm", layer_norm(config.hidden_size, config.layer_norm_eps));
}

torch::Tensor EmbeddingsImpl::forward(const ModelInput& in, int64_t past_length, const torch::Tensor& row_past) {
  const auto& ids = in.input_ids;
  const int64_t tokens = ids.size(1);
  // Each row's shift: one for the batch, or per row when rows of several tasks carry different prefixes.
  const torch::Tensor past = row_past.defined() ? row_past.view({-1, 1}) : torch::full({1, 1}, past_length, ids.options());
  torch::Tensor positions;
  if (config_.family == EncoderFamily::Roberta) {
    // RoBERTa counts only non-padding tokens, starting after padding_idx.
    auto not_pad = ids.ne(config_.pad_token_id).to(torch::kLong);
    positions = (not_pad.cumsum(1) + past) * not_pad + config_.pad_token_id;
  } else {
    positions = torch::arange(tokens, ids.options()).unsqueeze(0) + past;
  }
  // Upper bound of the largest position id, checked without reading device memory.
  const int64_t last_position =
      past_length + tokens - 1 + (config_.family == EncoderFamily::Roberta ? config_.pad_token_id + 1 : 0);
  if (last_position >= config_.max_position_embeddings)
    fail("input of {} tokens (+{} prefix) exceeds max_position_embeddings {}", tokens, past_length,
         config_.max_position_embeddings);

  torch::Tensor h = word_embeddings(ids) + position_embeddings(positions);
  if (token_type_embeddings) {
    if (in.token_type_ids.defined())
      h = h + token_type_embeddings(in.token_type_ids);
    else  // HF adds row 0 when no token types are given
      h = h + token_type_embeddings->weight[0];
  }
  h = LayerNorm(h);
  return maybe_dropout(h, config_.hidden_dropout_prob, is_training());
}

// ---- one transformer layer -------------------------------------------------------------------

LayerImpl::LayerImpl(const EncoderConfig& c, const std::string& path, int64_t index) : config_(c) {
  const int64_t d = c.hidden_size;
  auto info = [&](const std::string& name, SiteRole role) { return SiteInfo{path + name, index, role}; };
  auto attention = holder(*this, "attention");
  auto self = holder(*attention, "self");
  query = self->register_module("query", std::make_shared<LinearSite>(info("attention.self.query", SiteRole::Query), d, d));
  key = self->register_module("key", std::make_shared<LinearSite>(info("attention.self.key", SiteRole::Key), d, d));
  value = self->register_module("value", std::make_shared<LinearSite>(info("attention.self.value", SiteRole::Value), d, d));
  kv_site = std::make_shared<AttentionKVSite>(info("attention.self", SiteRole::AttentionKV));

  auto attention_output = holder(*attention, "output");
  attention_dense = attention_output->register_module(
      "dense", std::make_shared<LinearSite>(info("attention.output.dense", SiteRole::AttentionOutput), d, d));
  attention_norm = attention_output->register_module("LayerNorm", layer_norm(d, c.layer_norm_eps));
  attention_adapters = attention_output->register_module(
      "adapters", std::make_shared<SublayerSite>(info("attention.output", SiteRole::AfterAttention)));

  auto intermediate = holder(*this, "intermediate");
  intermediate_dense = intermediate->register_module(
      "dense", std::make_shared<LinearSite>(info("intermediate.dense", SiteRole::FfnUp), d, c.intermediate_size));

  auto output = holder(*this, "output");
  output_dense = output->register_module(
      "dense", std::make_shared<LinearSite>(info("output.dense", SiteRole::FfnDown), c.intermediate_size, d));
  output_norm = output->register_module("LayerNorm", layer_norm(d, c.layer_norm_eps));
  output_adapters = output->register_module("adapters", std::make_shared<SublayerSite>(info("output", SiteRole::AfterFfn)));
}

torch::Tensor TokenLayout::pack(const torch::Tensor& grid) const {
  return grid.reshape({batch * tokens, grid.size(-1)}).index_select(0, index);
}

torch::Tensor TokenLayout::unpack(const torch::Tensor& packed) const {
  return packed.new_zeros({batch * tokens, packed.size(-1)}).index_copy(0, index, packed).view({batch, tokens, -1});
}

torch::Tensor LayerImpl::attention(const torch::Tensor& hidden, const torch::Tensor& additive_mask,
                                   const TokenLayout& layout, ForwardContext& context) {
  RowRouting* routing = &context.routing;
  const int64_t batch = layout.packed() ? layout.batch : hidden.size(0);
  const int64_t tokens = layout.packed() ? layout.tokens : hidden.size(1);
  const int64_t heads = config_.num_attention_heads, head_dim = config_.head_dim();
  auto split_heads = [&](const torch::Tensor& t) {
    return (layout.packed() ? layout.unpack(t) : t).view({batch, -1, heads, head_dim}).transpose(1, 2);
  };

  torch::Tensor q = split_heads(query->forward(hidden, routing));
  AttentionKV kv{split_heads(key->forward(hidden, routing)), split_heads(value->forward(hidden, routing)), additive_mask};
  kv_site->forward(kv, routing);

  const double p = is_training() ? config_.attention_probs_dropout_prob : 0.0;
  // An undefined mask must reach sdpa as "no mask": some kernels validate the tensor otherwise.
  const std::optional<torch::Tensor> mask = kv.mask.defined() ? std::optional<torch::Tensor>(kv.mask) : std::nullopt;
  torch::Tensor attended = at::scaled_dot_product_attention(q, kv.key, kv.value, mask, p);
  attended = attended.transpose(1, 2).reshape({batch, tokens, config_.hidden_size});
  return layout.packed() ? layout.pack(attended) : attended;
}

torch::Tensor LayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask,
                                 const TokenLayout& layout, ForwardContext& context) {
  const bool training = is_training();
  RowRouting* routing = &context.routing;
  // Attention sublayer: dense -> dropout -> adapters -> residual + LayerNorm.
  torch::Tensor h = maybe_dropout(attention_dense->forward(attention(hidden, additive_mask, layout, context), routing),
                                  config_.hidden_dropout_prob, training);
  if (!attention_adapters->empty()) h = attention_adapters->forward(hidden, h, routing);
  torch::Tensor attended = attention_norm(h + hidden);

  // Feed-forward sublayer, same shape.
  torch::Tensor ff = activate(config_.hidden_act, intermediate_dense->forward(attended, routing));
  h = maybe_dropout(output_dense->forward(ff, routing), config_.hidden_dropout_prob, training);
  if (!output_adapters->empty()) h = output_adapters->forward(attended, h, routing);
  return output_norm(h + attended);
}

// ---- the encoder -----------------------------------------------------------------------------

EncoderModelImpl::EncoderModelImpl(const EncoderConfig& config, bool with_pooler, const std::string& path_prefix)
    : config_(config), prefix_(path_prefix) {
  embeddings = register_module("embeddings", Embeddings(config));
  auto encoder = holder(*this, "encoder");
  auto layer_list = holder(*encoder, "layer");
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string path = fmt::format("{}encoder.layer.{}.", prefix_, i);
    layers.push_back(layer_list->register_module(std::to_string(i), Layer(config, path, i)));
  }
  if (with_pooler) {
    auto pooler = holder(*this, "pooler");
    pooler_dense = pooler->register_module(
        "dense", std::make_shared<LinearSite>(SiteInfo{prefix_ + "pooler.dense", -1, SiteRole::Pooler}, config.hidden_size,
                                              config.hidden_size));
  }
}

// Right-padded batches often carry whole columns of padding (inputs padded to a fixed max_length).
// Dropping columns where no row has a real token changes nothing for real tokens, as they never attend
// to padding, and saves their compute. Returns the number of columns to keep.
static int64_t columns_in_use(const torch::Tensor& mask) {
  if (!mask.defined()) return -1;
  const int64_t tokens = mask.size(1);
  torch::Tensor used = mask.ne(0).any(0);  // (tokens)
  torch::Tensor positions = torch::arange(1, tokens + 1, mask.options().dtype(torch::kLong));
  return (used.to(torch::kLong) * positions).max().item<int64_t>();
}

EncoderOutput EncoderModelImpl::forward(const ModelInput& full, ForwardContext& context) {
  if (!full.input_ids.defined() || full.input_ids.dim() != 2)
    fail("input_ids must be a (batch, tokens) tensor");
  const int64_t tokens = full.input_ids.size(1);
  const int64_t keep = full.skip_padding_columns ? columns_in_use(full.attention_mask) : -1;
  ModelInput in = full;
  if (keep > 0 && keep < tokens) {
    in.input_ids = full.input_ids.narrow(1, 0, keep);
    in.attention_mask = full.attention_mask.narrow(1, 0, keep);
    if (full.token_type_ids.defined()) in.token_type_ids = full.token_type_ids.narrow(1, 0, keep);
  }
  // Prefix tuning's virtual tokens act as past tokens: they shift the position ids, as in HF. With
  // rows routed to several tasks, each row is shifted by its own task's prefix.
  int64_t past_length = 0;
  torch::Tensor row_past;
  if (!layers.empty()) {
    const AttentionKVSite& kv = *layers.front()->kv_site;
    if (context.routing.active() && !kv.empty()) {
      std::vector<int64_t> per_row = kv.virtual_tokens_per_row(context.routing, in.input_ids.size(0));
      past_length = *std::max_element(per_row.begin(), per_row.end());
      row_past = torch::tensor(per_row, torch::kLong).to(in.input_ids.device());
    } else {
      past_length = kv.virtual_tokens();
    }
  }
  torch::Tensor hidden = embeddings->forward(in, past_length, row_past);

  // Additive mask (batch, 1, 1, tokens): 0 where attended, the lowest float where masked, as HF builds it.
  // Without padding there is no mask at all, which lets attention take its fused kernel.
  torch::Tensor additive;
  const torch::Tensor& mask = in.attention_mask;
  if (mask.defined() && !mask.all().item<bool>()) {
    additive = (1.0 - mask.to(hidden.scalar_type()))
                   .mul(std::numeric_limits<float>::lowest())
                   .view({mask.size(0), 1, 1, -1});
    if (hidden.scalar_type() != torch::kFloat) additive = additive.clamp_min(-65504.0).to(hidden.scalar_type());
  }

  // Pack the real tokens when padding is to be skipped. The pooler reads each row's first token, so
  // left-padded batches (first token padding) stay on the grid.
  TokenLayout layout;
  if (full.skip_padding_columns && additive.defined() && mask.select(1, 0).ne(0).all().item<bool>()) {
    layout = {mask.reshape({-1}).nonzero().squeeze(1), hidden.size(0), hidden.size(1)};
    hidden = layout.pack(hidden);
    if (context.routing.active()) context.routing.set_token_rows(layout.index.div(layout.tokens, "floor"));
  }

  for (auto& layer : layers) hidden = layer->forward(hidden, additive, layout, context);
  if (layout.packed()) {
    hidden = layout.unpack(hidden);
    if (context.routing.active()) context.routing.set_token_rows({});
  }

  EncoderOutput out{hidden, {}};
  if (pooler_dense) out.pooled = torch::tanh(pooler_dense->forward(hidden.select(1, 0), &context.routing));
  // Dropped padding columns come back as zeros, so the output keeps the input's shape.
  if (hidden.size(1) < tokens)
    out.last_hidden_state = torch::cat({hidden, hidden.new_zeros({hidden.size(0), tokens - hidden.size(1), hidden.size(2)})}, 1);
  return out;
}

void EncoderModelImpl::collect_sites(SiteIndex& index) const {
  for (auto& layer : layers) {
    for (auto& site : {layer->query, layer->key, layer->value, layer->attention_dense, layer->intermediate_dense,
                       layer->output_dense})
      index.linear[site->path()] = site;
    index.sublayer[layer->attention_adapters->path()] = layer->attention_adapters;
    index.sublayer[layer->output_adapters->path()] = layer->output_adapters;
    index.attention_kv[layer->kv_site->path()] = layer->kv_site;
  }
  if (pooler_dense) index.linear[pooler_dense->path()] = pooler_dense;
}

// ---- sequence classification -----------------------------------------------------------------

ModelArch encoder_arch(const EncoderConfig& c) {
  ModelArch a;
  a.model_type = c.model_type;
  a.hidden_size = c.hidden_size;
  a.num_layers = c.num_hidden_layers;
  a.num_heads = a.num_kv_heads = c.num_attention_heads;
  a.head_dim = c.head_dim();
  a.intermediate_size = c.intermediate_size;
  a.vocab_size = c.vocab_size;
  a.max_positions = c.max_position_embeddings;
  a.reserved_positions = c.family == EncoderFamily::Roberta ? c.pad_token_id + 1 : 0;
  return a;
}

HeadSpec encoder_head(const EncoderConfig& c) {
  HeadSpec h;
  h.num_outputs = c.num_labels;
  h.kind = c.is_regression() ? HeadKind::Regression
           : c.problem_type == ProblemType::MultiLabel ? HeadKind::MultiLabel
                                                       : HeadKind::Classification;
  return h;
}

SequenceClassifierImpl::SequenceClassifierImpl(const EncoderConfig& config) : config_(config), arch_(encoder_arch(config)) {
  const bool bert = config.family == EncoderFamily::Bert;
  encoder = register_module(base_prefix(), EncoderModel(config, /*with_pooler=*/bert, base_prefix() + "."));
  const int64_t d = config.hidden_size;
  auto head_site = [](const std::string& path) { return SiteInfo{path, -1, SiteRole::Head}; };
  if (bert) {
    classifier = register_module("classifier", std::make_shared<LinearSite>(head_site("classifier"), d, config.num_labels));
  } else {
    auto head = holder(*this, "classifier");
    classifier_dense = head->register_module("dense", std::make_shared<LinearSite>(head_site("classifier.dense"), d, d));
    classifier_out_proj = head->register_module(
        "out_proj", std::make_shared<LinearSite>(head_site("classifier.out_proj"), d, config.num_labels));
  }
}

std::string SequenceClassifierImpl::base_prefix() const {
  return config_.family == EncoderFamily::Bert ? "bert" : "roberta";
}

HeadSpec SequenceClassifierImpl::head() const { return encoder_head(config_); }

nlohmann::json SequenceClassifierImpl::hf_config() const { return encoder_config_to_json(config_); }

torch::Tensor SequenceClassifierImpl::forward(const ModelInput& input, ForwardContext& context) {
  ModelInput in = input;
  in.skip_padding_columns = true;  // the heads read the first token only
  EncoderOutput out = encoder->forward(in, context);
  const double p = config_.classifier_dropout >= 0 ? config_.classifier_dropout : config_.hidden_dropout_prob;
  const bool training = is_training();
  RowRouting* routing = &context.routing;
  if (classifier) return classifier->forward(maybe_dropout(out.pooled, p, training), routing);
  // RoBERTa head: first token (<s>) -> dropout -> dense -> tanh -> dropout -> out_proj.
  torch::Tensor x = maybe_dropout(out.last_hidden_state.select(1, 0), p, training);
  x = torch::tanh(classifier_dense->forward(x, routing));
  return classifier_out_proj->forward(maybe_dropout(x, p, training), routing);
}

torch::Tensor SequenceClassifierImpl::head_logits(const EncoderOutput& out,
                                                 const std::map<std::string, torch::Tensor>& head) const {
  auto get = [&](const std::string& name, bool required) {
    auto it = head.find(name);
    if (it != head.end()) return it->second;
    if (required) fail("head: no tensor {}", name);
    return torch::Tensor();
  };
  if (classifier) {
    if (!out.pooled.defined()) fail("head: the encoder has no pooler");
    return F::linear(out.pooled, get("classifier.weight", true), get("classifier.bias", false));
  }
  torch::Tensor x = torch::tanh(F::linear(out.last_hidden_state.select(1, 0), get("classifier.dense.weight", true),
                                          get("classifier.dense.bias", false)));
  return F::linear(x, get("classifier.out_proj.weight", true), get("classifier.out_proj.bias", false));
}

SiteIndex SequenceClassifierImpl::sites() const {
  SiteIndex index;
  encoder->collect_sites(index);
  for (auto& site : {classifier, classifier_dense, classifier_out_proj})
    if (site) index.linear[site->path()] = site;
  return index;
}

torch::Tensor mean_pool(const torch::Tensor& last_hidden_state, const torch::Tensor& attention_mask, bool normalize) {
  torch::Tensor mask = attention_mask.unsqueeze(-1).to(last_hidden_state.scalar_type());
  torch::Tensor summed = (last_hidden_state * mask).sum(1);
  torch::Tensor counts = mask.sum(1).clamp_min(1e-9);
  torch::Tensor pooled = summed / counts;
  if (normalize) pooled = F::normalize(pooled, F::NormalizeFuncOptions().p(2).dim(1).eps(1e-12));
  return pooled;
}

}  // namespace peft
