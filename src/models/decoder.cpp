// What every decoder architecture shares: positions, masks, attention with the KV cache, the LM head.
#include "peft/models/decoder.h"

#include <cmath>
#include <limits>

#include <ATen/ops/scaled_dot_product_attention.h>
#include <torch/nn/functional/linear.h>

#include "peft/error.h"

namespace peft {

RMSNormImpl::RMSNormImpl(int64_t hidden, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // float32 at least, as HF's upcast; double stays double (gradient checks run in double).
  const torch::Tensor h = x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat);
  const torch::Tensor normed = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normed.to(x.scalar_type());
}

ModelArch decoder_arch(const DecoderConfig& c) {
  ModelArch a;
  a.model_type = c.model_type;
  a.hidden_size = c.hidden_size;
  a.num_layers = c.num_hidden_layers;
  a.num_heads = c.num_attention_heads;
  a.num_kv_heads = c.num_key_value_heads;
  a.head_dim = c.head_dim;
  a.intermediate_size = c.intermediate_size;
  a.vocab_size = c.vocab_size;
  a.max_positions = c.max_position_embeddings;
  a.causal = true;
  return a;
}

CausalLM::CausalLM(DecoderConfig config) : config_(std::move(config)), arch_(decoder_arch(config_)) {}

std::vector<std::string> CausalLM::head_parameter_prefixes() const {
  if (config_.tie_word_embeddings) return {};
  return {"lm_head."};
}

DecoderPass CausalLM::begin_pass(const ModelInput& in, ForwardContext& context) {
  const torch::Tensor& ids = in.input_ids;
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) == 0) fail("input_ids must be a non-empty (batch, tokens) tensor");
  const int64_t batch = ids.size(0), tokens = ids.size(1);
  KVCache* cache = context.cache;
  if (cache && cache->batch() != batch) fail("KV cache holds {} rows but the input has {}", cache->batch(), batch);
  const int64_t cached = cache ? cache->length() : 0;
  const bool fresh = cached == 0;
  const AttentionKVSite& kv_site = first_kv_site();

  DecoderPass pass;
  pass.context = &context;
  // Attention-KV methods' virtual tokens come before the input, like past tokens (as PEFT's prefix
  // tuning passes them as past_key_values): positions start after them.
  // With rows routed to several tasks, each row's positions start after its own task's tokens.
  const bool routed = context.routing.active() && !kv_site.empty();
  const int64_t virtual_total = kv_site.virtual_tokens();
  pass.virtual_tokens = fresh ? virtual_total : 0;
  torch::Tensor shift = torch::full({1, 1}, virtual_total, ids.options().dtype(torch::kLong));
  if (routed) shift = torch::tensor(kv_site.virtual_tokens_per_row(context.routing, batch), torch::kLong)
                          .to(ids.device()).view({batch, 1});
  if (in.position_ids.defined()) {
    if (in.position_ids.sizes() != ids.sizes()) fail("position_ids must have the shape of input_ids");
    pass.positions = in.position_ids + shift;
  } else {
    if (routed && !fresh) fail("rows routed to tasks with virtual tokens need position_ids after the first pass");
    const torch::Tensor start = fresh ? shift : torch::full({1, 1}, cached, ids.options().dtype(torch::kLong));
    pass.positions = (torch::arange(tokens, ids.options().dtype(torch::kLong)).unsqueeze(0) + start).expand({batch, tokens});
  }

  // Which keys each query may see: earlier (cached) keys and itself, minus padding.
  torch::Tensor key_valid;
  if (in.attention_mask.defined()) {
    if (in.attention_mask.sizes() != ids.sizes()) fail("attention_mask must have the shape of input_ids");
    key_valid = in.attention_mask;
  }
  if (cache && !fresh) {
    torch::Tensor now = key_valid.defined() ? key_valid : torch::ones({batch, tokens}, ids.options());
    key_valid = torch::cat({cache->key_mask(), now.to(torch::kLong)}, 1);
  }
  const bool padded = key_valid.defined() && !key_valid.ne(0).all().item<bool>();
  const bool needs_mask = padded || (fresh && !kv_site.empty()) || (!fresh && tokens > 1);
  if (!needs_mask) {
    pass.causal = fresh && tokens > 1;
    return pass;
  }
  const int64_t keys = cached + tokens;
  torch::Tensor query_pos = torch::arange(cached, keys, ids.options().dtype(torch::kLong)).view({tokens, 1});
  torch::Tensor key_pos = torch::arange(0, keys, ids.options().dtype(torch::kLong)).view({1, keys});
  torch::Tensor allowed = key_pos.le(query_pos).unsqueeze(0);  // (1, tokens, keys)
  if (key_valid.defined()) allowed = allowed.logical_and(key_valid.ne(0).unsqueeze(1));
  const torch::Tensor ref = reference_weight();
  pass.mask = torch::zeros(allowed.sizes(), ref.options().device(ids.device()))
                  .masked_fill(allowed.logical_not(), std::numeric_limits<float>::lowest())
                  .unsqueeze(1);
  if (ref.scalar_type() != torch::kFloat) pass.mask = pass.mask.clamp_min(-65504.0);
  return pass;
}

torch::Tensor CausalLM::attend(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, AttentionKVSite& site,
                               DecoderPass& pass, double scale) {
  ForwardContext& context = *pass.context;
  torch::Tensor mask = pass.mask;
  const bool fresh = !context.cache || context.cache->length() == 0;  // length() moves at commit, after every layer
  if (fresh && !site.empty()) {
    AttentionKV kv{k, v, mask};
    const int64_t before = k.size(2);
    site.forward(kv, &context.routing);
    if (context.routing.active() && !pass.virtual_mask.defined()) {
      // Routed: only the routed tasks' tokens were prepended, each visible to its own rows only.
      pass.virtual_tokens = kv.key.size(2) - before;
      pass.virtual_mask = kv.mask.narrow(3, 0, pass.virtual_tokens).select(1, 0).select(1, -1).eq(0).to(torch::kLong);
    }
    k = kv.key;
    v = kv.value;
    mask = kv.mask;
  }
  if (context.cache) std::tie(k, v) = context.cache->append(site.layer_index(), k, v);
  const double p = is_training() ? config_.attention_dropout : 0.0;
  const std::optional<torch::Tensor> attn_mask = mask.defined() ? std::optional<torch::Tensor>(mask) : std::nullopt;
  return at::scaled_dot_product_attention(q, k, v, attn_mask, p, pass.causal && !mask.defined(), scale,
                                          /*enable_gqa=*/q.size(1) != k.size(1));
}

torch::Tensor CausalLM::hidden_states(const ModelInput& in, ForwardContext& context) {
  DecoderPass pass = begin_pass(in, context);
  torch::Tensor hidden = run_layers(embed(in, pass), pass);
  if (context.cache) {
    const int64_t batch = in.input_ids.size(0);
    torch::Tensor real = in.attention_mask.defined() ? in.attention_mask.to(torch::kLong)
                                                     : torch::ones_like(in.input_ids);
    if (pass.virtual_mask.defined())
      real = torch::cat({pass.virtual_mask.to(real.device()), real}, 1);
    else if (pass.virtual_tokens > 0)
      real = torch::cat({torch::ones({batch, pass.virtual_tokens}, real.options()), real}, 1);
    context.cache->commit(real);
  }
  return hidden;
}

torch::Tensor CausalLM::forward(const ModelInput& in, ForwardContext& context) {
  torch::Tensor hidden = hidden_states(in, context);
  if (context.last_position_only) hidden = hidden.narrow(1, hidden.size(1) - 1, 1);
  return torch::nn::functional::linear(hidden, lm_head_weight());
}

std::shared_ptr<CausalLM> make_causal_lm(const DecoderConfig& config) {
  if (config.family == DecoderFamily::Gpt2) return std::make_shared<Gpt2LMHeadModel>(config);
  return std::make_shared<LlamaForCausalLM>(config);
}

}  // namespace peft
