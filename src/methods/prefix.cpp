#include "peft/methods/prefix.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/functional/linear.h>

#include "methods/json_config.h"
#include "peft/error.h"

namespace peft {

void PrefixConfig::validate() const {
  if (num_virtual_tokens <= 0) fail("prefix: num_virtual_tokens must be > 0 (got {})", num_virtual_tokens);
  if (encoder_hidden_size < 0) fail("prefix: encoder_hidden_size must be >= 0 (got {})", encoder_hidden_size);
}

PrefixConfig PrefixConfig::from_json(const nlohmann::json& j) {
  PrefixConfig c;
  read_key(j, "num_virtual_tokens", c.num_virtual_tokens);
  read_key(j, "prefix_projection", c.prefix_projection);
  read_key(j, "encoder_hidden_size", c.encoder_hidden_size);
  if (j.contains("num_transformer_submodules") && j["num_transformer_submodules"].is_number() &&
      j["num_transformer_submodules"].get<int>() != 1)
    fail("prefix: num_transformer_submodules must be 1 (encoder-only or decoder-only models)");
  c.validate();
  return c;
}

nlohmann::json PrefixConfig::to_json() const {
  return {{"num_virtual_tokens", num_virtual_tokens},
          {"prefix_projection", prefix_projection},
          {"encoder_hidden_size", encoder_hidden_size}};
}

namespace {

// The prompt encoder: holds either E and the MLP (training with projection) or the table itself.
class PromptEncoder : public AttentionKVMethod {
 public:
  // With grouped-query attention the table holds the key/value heads only (PEFT's token_dim is then
  // num_key_value_heads * head_dim).
  PromptEncoder(const PrefixConfig& c, const ModelArch& m)
      : l_(c.num_virtual_tokens), d_(m.num_kv_heads * m.head_dim), layers_(m.num_layers), heads_(m.num_kv_heads) {
    const int64_t table_width = 2 * layers_ * d_;
    if (c.prefix_projection) {
      const int64_t mid = c.encoder_hidden_size > 0 ? c.encoder_hidden_size : d_;
      embedding = register_module("embedding", torch::nn::Embedding(l_, d_));
      transform = register_module("transform", torch::nn::Sequential(torch::nn::Linear(d_, mid), torch::nn::Tanh(),
                                                                      torch::nn::Linear(mid, table_width)));
    } else {
      embedding = register_module("embedding", torch::nn::Embedding(l_, table_width));
    }
  }

  bool has_mlp() const { return !transform.is_empty(); }

  // Layer i's (key, value) rows of the table, each (l, d). With the MLP only layer i's slice of the
  // output projection is computed; finalize() uses the same function, so a saved table reproduces
  // the training-time values bit for bit.
  std::pair<torch::Tensor, torch::Tensor> layer_kv(int64_t i) {
    torch::Tensor rows;
    if (has_mlp()) {
      auto& first = transform->at<torch::nn::LinearImpl>(0);
      auto& last = transform->at<torch::nn::LinearImpl>(2);
      torch::Tensor hidden = torch::tanh(first.forward(embedding->weight));
      rows = torch::nn::functional::linear(hidden, last.weight.narrow(0, 2 * i * d_, 2 * d_),
                                           last.bias.narrow(0, 2 * i * d_, 2 * d_));
    } else {
      rows = embedding->weight.narrow(1, 2 * i * d_, 2 * d_);
    }
    return {rows.narrow(1, 0, d_), rows.narrow(1, d_, d_)};
  }

  // The full table (l, 2·layers·d), as PEFT saves it.
  torch::Tensor table() {
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < layers_; ++i) {
      auto [k, v] = layer_kv(i);
      parts.push_back(k);
      parts.push_back(v);
    }
    return torch::cat(parts, 1);
  }

  // Replaces E + MLP by the precomputed table.
  void drop_mlp() {
    if (!has_mlp()) return;
    torch::Tensor t;
    {
      torch::NoGradGuard no_grad;
      t = table().detach().clone();
    }
    auto device = embedding->weight.device();
    unregister_module("embedding");
    unregister_module("transform");
    transform = torch::nn::Sequential(nullptr);
    embedding = register_module("embedding", torch::nn::Embedding(t.size(0), t.size(1)));
    embedding->to(device, t.scalar_type());
    torch::NoGradGuard no_grad;
    embedding->weight.copy_(t);
  }

  int64_t virtual_tokens() const override { return l_; }

  void apply(int64_t layer, AttentionKV& kv) override {
    auto [k, v] = layer_kv(layer);
    const int64_t batch = kv.key.size(0), head_dim = d_ / heads_;
    auto heads = [&](const torch::Tensor& t) {
      return t.to(kv.key.scalar_type()).reshape({l_, heads_, head_dim}).transpose(0, 1).unsqueeze(0).expand(
          {batch, heads_, l_, head_dim});
    };
    kv.key = torch::cat({heads(k), kv.key}, 2);
    kv.value = torch::cat({heads(v), kv.value}, 2);
    if (!kv.mask.defined()) return;  // no padding anywhere: prefix tokens need no mask either
    auto zeros = torch::zeros({kv.mask.size(0), 1, 1, l_}, kv.mask.options());
    kv.mask = torch::cat({zeros.expand({kv.mask.size(0), kv.mask.size(1), kv.mask.size(2), l_}), kv.mask}, 3);
  }

  torch::nn::Embedding embedding{nullptr};
  torch::nn::Sequential transform{nullptr};

 private:
  int64_t l_, d_, layers_, heads_;
};

class Prefix : public Method {
 public:
  explicit Prefix(PrefixConfig c) : config_(std::move(c)) { config_.validate(); }
  std::string type() const override { return "prefix"; }
  nlohmann::json config() const override { return config_.to_json(); }
  std::string head_key_prefix() const override { return "base_model."; }  // PEFT's prompt-learning layout

  void attach(Model& model) override {
    const ModelArch& m = model.arch();
    // Real tokens' positions start after the prefix (RoBERTa's after padding_idx too): leave room for at least one.
    if (config_.num_virtual_tokens + m.reserved_positions >= m.max_positions)
      fail("prefix: num_virtual_tokens {} leaves no positions for input (max_position_embeddings {})",
           config_.num_virtual_tokens, m.max_positions);
    const std::string child = site_child_name(adapter_name(), "prompt_encoder");
    if (model.named_children().contains(child)) fail("prefix: a prefix is already attached to this model");
    encoder_ = std::make_shared<PromptEncoder>(config_, m);
    const torch::Tensor w = model.reference_weight();
    encoder_->to(w.device(), w.scalar_type());
    model.register_module(child, encoder_);
    for (auto& site : model.sites().attention_kv_sites()) site->attach(adapter_name(), type(), encoder_);
  }

  void detach(Model& model) override {
    for (auto& site : model.sites().attention_kv_sites()) site->detach(adapter_name(), type());
    model.unregister_module(site_child_name(adapter_name(), "prompt_encoder"));
    encoder_.reset();
  }

  std::vector<MethodTensor> tensors() override {
    std::vector<MethodTensor> out;
    if (!encoder_->has_mlp()) return {{"prompt_encoder", "prompt_embeddings", encoder_->embedding->weight}};
    for (auto& item : encoder_->named_parameters()) out.push_back({"prompt_encoder", "prompt_encoder." + item.key(), item.value()});
    return out;
  }

  std::vector<MethodTensor> saved_tensors() override {
    torch::NoGradGuard no_grad;
    return {{"prompt_encoder", "prompt_embeddings", encoder_->table()}};
  }

  void load_tensors(const std::function<torch::Tensor(const std::string&)>& lookup) override {
    encoder_->drop_mlp();  // files hold the table only
    copy_checked(encoder_->embedding->weight, lookup("prompt_embeddings"), "prompt_embeddings");
  }

  // Precompute-and-drop-MLP after training.
  void finalize() override { encoder_->drop_mlp(); }

 private:
  PrefixConfig config_;
  std::shared_ptr<PromptEncoder> encoder_;
};

}  // namespace

std::shared_ptr<Method> make_prefix(const PrefixConfig& config) { return std::make_shared<Prefix>(config); }

}  // namespace peft
