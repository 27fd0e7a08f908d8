// LlamaForCausalLM with HF's module names: RMSNorm, rotary embeddings, SwiGLU, grouped-query attention.
#include <cmath>

#include "peft/error.h"
#include "peft/models/decoder.h"

namespace peft {
namespace {

std::shared_ptr<torch::nn::Module> llama_holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

// HF's rotate_half: (x1, x2) -> (-x2, x1) over the two halves of the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

torch::Tensor rope_inverse_frequencies(const DecoderConfig& c) {
  const int64_t dim = c.head_dim;
  // As HF: 1 / base^(arange(0, dim, 2) / dim) in float32.
  torch::Tensor exponents = torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / double(dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(torch::tensor(c.rope_theta, torch::kFloat), exponents);
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "linear") return inv_freq / r.factor;
  if (r.type != "llama3") return inv_freq;
  // Llama 3: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
  const double old_len = double(r.original_max_position_embeddings);
  const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
  const torch::Tensor wavelen = 2 * M_PI / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv_freq / r.factor, inv_freq);
  const torch::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  const torch::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
  const torch::Tensor medium = wavelen.ge(high_wavelen).logical_and(wavelen.le(low_wavelen));
  return torch::where(medium, smoothed, scaled);
}

LlamaForCausalLM::LlamaForCausalLM(DecoderConfig config) : CausalLM(std::move(config)) {
  const DecoderConfig& c = config_;
  const int64_t d = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim, kv_dim = c.num_key_value_heads * c.head_dim;
  auto model = llama_holder(*this, "model");
  embed_tokens = model->register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, d));
  auto layer_list = llama_holder(*model, "layers");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string path = fmt::format("model.layers.{}.", i);
    auto info = [&](const std::string& name, SiteRole role) { return SiteInfo{path + name, i, role}; };
    auto layer = llama_holder(*layer_list, std::to_string(i));
    Layer l;
    auto attn = llama_holder(*layer, "self_attn");
    auto linear = [&](torch::nn::Module& parent, const char* name, const std::string& local, SiteRole role, int64_t in,
                      int64_t out, bool bias) {
      return parent.register_module(name, std::make_shared<LinearSite>(info(local, role), in, out, bias));
    };
    l.q_proj = linear(*attn, "q_proj", "self_attn.q_proj", SiteRole::Query, d, q_dim, c.attention_bias);
    l.k_proj = linear(*attn, "k_proj", "self_attn.k_proj", SiteRole::Key, d, kv_dim, c.attention_bias);
    l.v_proj = linear(*attn, "v_proj", "self_attn.v_proj", SiteRole::Value, d, kv_dim, c.attention_bias);
    l.o_proj = linear(*attn, "o_proj", "self_attn.o_proj", SiteRole::AttentionOutput, q_dim, d, c.attention_bias);
    l.attn_adapters = attn->register_module("adapters", std::make_shared<SublayerSite>(info("self_attn", SiteRole::AfterAttention)));
    l.kv_site = std::make_shared<AttentionKVSite>(info("self_attn", SiteRole::AttentionKV));
    auto mlp = llama_holder(*layer, "mlp");
    l.gate_proj = linear(*mlp, "gate_proj", "mlp.gate_proj", SiteRole::FfnGate, d, c.intermediate_size, c.mlp_bias);
    l.up_proj = linear(*mlp, "up_proj", "mlp.up_proj", SiteRole::FfnUp, d, c.intermediate_size, c.mlp_bias);
    l.down_proj = linear(*mlp, "down_proj", "mlp.down_proj", SiteRole::FfnDown, c.intermediate_size, d, c.mlp_bias);
    l.mlp_adapters = mlp->register_module("adapters", std::make_shared<SublayerSite>(info("mlp", SiteRole::AfterFfn)));
    l.input_layernorm = layer->register_module("input_layernorm", RMSNorm(d, c.norm_eps));
    l.post_attention_layernorm = layer->register_module("post_attention_layernorm", RMSNorm(d, c.norm_eps));
    layers.push_back(std::move(l));
  }
  norm = model->register_module("norm", RMSNorm(d, c.norm_eps));
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(d, c.vocab_size).bias(false)));
  inv_freq_ = rope_inverse_frequencies(c);
}

SiteIndex LlamaForCausalLM::sites() const {
  SiteIndex index;
  for (auto& l : layers) {
    for (auto& site : {l.q_proj, l.k_proj, l.v_proj, l.o_proj, l.gate_proj, l.up_proj, l.down_proj})
      index.linear[site->path()] = site;
    index.sublayer[l.attn_adapters->path()] = l.attn_adapters;
    index.sublayer[l.mlp_adapters->path()] = l.mlp_adapters;
    index.attention_kv[l.kv_site->path()] = l.kv_site;
  }
  return index;
}

torch::Tensor LlamaForCausalLM::embed(const ModelInput& in, const DecoderPass&) { return embed_tokens(in.input_ids); }

torch::Tensor LlamaForCausalLM::run_layers(torch::Tensor hidden, DecoderPass& pass) {
  RowRouting* routing = &pass.context->routing;
  const int64_t batch = hidden.size(0), tokens = hidden.size(1), head_dim = config_.head_dim;
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  // cos/sin once per pass, (batch, 1, tokens, head_dim), in float32 then the model's dtype as HF does
  // (double models keep double).
  const auto angle_type = hidden.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor freqs = pass.positions.to(angle_type).unsqueeze(-1) * inv_freq_.to(hidden.device(), angle_type);
  const torch::Tensor angles = torch::cat({freqs, freqs}, -1);
  const torch::Tensor cos = angles.cos().to(hidden.scalar_type()).unsqueeze(1);
  const torch::Tensor sin = angles.sin().to(hidden.scalar_type()).unsqueeze(1);
  auto rotate = [&](const torch::Tensor& x) { return x * cos + rotate_half(x) * sin; };
  const double scale = 1.0 / std::sqrt(double(head_dim));
  for (auto& l : layers) {
    const torch::Tensor a = l.input_layernorm(hidden);
    auto heads_of = [&](const torch::Tensor& t, int64_t n) { return t.view({batch, tokens, n, head_dim}).transpose(1, 2); };
    const torch::Tensor q = rotate(heads_of(l.q_proj->forward(a, routing), heads));
    const torch::Tensor k = rotate(heads_of(l.k_proj->forward(a, routing), kv_heads));
    const torch::Tensor v = heads_of(l.v_proj->forward(a, routing), kv_heads);
    torch::Tensor attended = attend(q, k, v, *l.kv_site, pass, scale);
    attended = attended.transpose(1, 2).reshape({batch, tokens, heads * head_dim});
    torch::Tensor out = l.o_proj->forward(attended, routing);
    if (!l.attn_adapters->empty()) out = l.attn_adapters->forward(a, out, routing);
    hidden = hidden + out;

    const torch::Tensor m = l.post_attention_layernorm(hidden);
    torch::Tensor ff = torch::silu(l.gate_proj->forward(m, routing)) * l.up_proj->forward(m, routing);
    ff = l.down_proj->forward(ff, routing);
    if (!l.mlp_adapters->empty()) ff = l.mlp_adapters->forward(m, ff, routing);
    hidden = hidden + ff;
  }
  return norm(hidden);
}

}  // namespace peft
