#pragma once
// Decoder-only language models (GPT2LMHeadModel, LlamaForCausalLM), one implementation each, with HF
// module names ("transformer.h.0.attn.c_attn", "model.layers.0.self_attn.q_proj") and the same sites as
// the encoders, so every method works on them unchanged. CausalLM holds what both share: positions,
// the causal/padding mask, attention with the KV cache and the attention-KV site, the LM head.
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include "peft/models/decoder_config.h"
#include "peft/models/model.h"

namespace peft {

// LLaMA's RMSNorm, computed in float32 as HF does.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t hidden, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// What one forward pass of a decoder derives once and every layer reads.
struct DecoderPass {
  ForwardContext* context = nullptr;
  torch::Tensor positions;     // (batch, tokens) position ids of this pass's tokens
  torch::Tensor mask;          // additive (batch, 1, tokens, keys) or undefined (then `causal` says how)
  bool causal = false;         // no mask: plain causal attention (true) or none at all (false)
  int64_t virtual_tokens = 0;  // prepended by attention-KV methods in this pass (a fresh sequence only)
  // Rows routed to several tasks: which prepended tokens are each row's own (batch, virtual_tokens),
  // read off the first layer's mask; the cache keeps it so later steps do not see other tasks' tokens.
  torch::Tensor virtual_mask;
};

class CausalLM : public Model {
 public:
  explicit CausalLM(DecoderConfig config);
  using Model::forward;
  // Logits (batch, tokens, vocab); with context.last_position_only, (batch, 1, vocab).
  torch::Tensor forward(const ModelInput& in, ForwardContext& context) override;

  const DecoderConfig& config() const { return config_; }
  const ModelArch& arch() const override { return arch_; }
  HeadSpec head() const override { return {HeadKind::CausalLM, config_.vocab_size}; }
  nlohmann::json hf_config() const override { return config_.raw; }
  // A tied LM head has no parameters of its own; an untied one is "lm_head".
  std::vector<std::string> head_parameter_prefixes() const override;
  std::string head_module_name() const override { return config_.tie_word_embeddings ? "" : "lm_head"; }

  // The last hidden state (after the final norm), for tests and pooling.
  torch::Tensor hidden_states(const ModelInput& in, ForwardContext& context);

 protected:
  // Token (and position) embeddings of this pass.
  virtual torch::Tensor embed(const ModelInput& in, const DecoderPass& pass) = 0;
  // Every layer and the final norm.
  virtual torch::Tensor run_layers(torch::Tensor hidden, DecoderPass& pass) = 0;
  virtual torch::Tensor lm_head_weight() const = 0;
  virtual const AttentionKVSite& first_kv_site() const = 0;

  // Attention of one layer: q (batch, heads, t, d), k/v (batch, kv heads, t, d) after rotary embeddings.
  // Attention-KV methods see k/v (and the mask) on a fresh sequence only: afterwards what they added is
  // in the cache.
  torch::Tensor attend(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, AttentionKVSite& site,
                       DecoderPass& pass, double scale);

  DecoderConfig config_;
  ModelArch arch_;
  torch::nn::Linear lm_head{nullptr};  // untied only

 private:
  DecoderPass begin_pass(const ModelInput& in, ForwardContext& context);
};

// GPT2LMHeadModel: learned positions, pre-LN blocks, Conv1D weights stored (in, out), tied head.
class Gpt2LMHeadModel : public CausalLM {
 public:
  explicit Gpt2LMHeadModel(DecoderConfig config);
  SiteIndex sites() const override;
  std::vector<std::string> base_children() const override { return {"transformer", "lm_head"}; }
  torch::Tensor reference_weight() const override { return wte->weight; }

  struct Block {
    torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
    std::shared_ptr<LinearSite> c_attn, attn_c_proj, c_fc, mlp_c_proj;
    std::shared_ptr<SublayerSite> attn_adapters, mlp_adapters;
    std::shared_ptr<AttentionKVSite> kv_site;
  };
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  std::vector<Block> blocks;

 protected:
  torch::Tensor embed(const ModelInput& in, const DecoderPass& pass) override;
  torch::Tensor run_layers(torch::Tensor hidden, DecoderPass& pass) override;
  torch::Tensor lm_head_weight() const override { return wte->weight; }
  const AttentionKVSite& first_kv_site() const override { return *blocks.front().kv_site; }
};

// LlamaForCausalLM: RMSNorm, rotary embeddings (default/linear/llama3), SwiGLU, grouped-query attention.
class LlamaForCausalLM : public CausalLM {
 public:
  explicit LlamaForCausalLM(DecoderConfig config);
  SiteIndex sites() const override;
  std::vector<std::string> base_children() const override { return {"model", "lm_head"}; }
  torch::Tensor reference_weight() const override { return embed_tokens->weight; }

  struct Layer {
    RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
    std::shared_ptr<LinearSite> q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
    std::shared_ptr<SublayerSite> attn_adapters, mlp_adapters;
    std::shared_ptr<AttentionKVSite> kv_site;
  };
  torch::nn::Embedding embed_tokens{nullptr};
  RMSNorm norm{nullptr};
  std::vector<Layer> layers;

 protected:
  torch::Tensor embed(const ModelInput& in, const DecoderPass& pass) override;
  torch::Tensor run_layers(torch::Tensor hidden, DecoderPass& pass) override;
  torch::Tensor lm_head_weight() const override {
    return config_.tie_word_embeddings ? embed_tokens->weight : lm_head->weight;
  }
  const AttentionKVSite& first_kv_site() const override { return *layers.front().kv_site; }

 private:
  torch::Tensor inv_freq_;  // (head_dim / 2) float32, after rope scaling
};

// Rotary inverse frequencies as HF computes them for `config` (float32), rope scaling applied.
torch::Tensor rope_inverse_frequencies(const DecoderConfig& config);

// The architecture-neutral view of a decoder config.
ModelArch decoder_arch(const DecoderConfig& config);

// An empty module of the given architecture (weights uninitialised).
std::shared_ptr<CausalLM> make_causal_lm(const DecoderConfig& config);

}  // namespace peft
