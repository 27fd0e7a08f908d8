// GPT2LMHeadModel with HF's module names. Conv1D layers store their weight (in, out): the linear sites
// are told so (fan_in_fan_out), and methods see the usual (out, in) view.
#include <cmath>

#include <torch/nn/functional/dropout.h>

#include "peft/error.h"
#include "peft/models/decoder.h"

namespace peft {
namespace {

std::shared_ptr<torch::nn::Module> gpt2_holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::Tensor gpt2_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  return torch::nn::functional::dropout(x, torch::nn::functional::DropoutFuncOptions().p(p).training(true));
}

}  // namespace

Gpt2LMHeadModel::Gpt2LMHeadModel(DecoderConfig config) : CausalLM(std::move(config)) {
  const DecoderConfig& c = config_;
  if (!c.tie_word_embeddings) fail("gpt2: untied LM heads are not supported (tie_word_embeddings false)");
  const int64_t d = c.hidden_size;
  auto transformer = gpt2_holder(*this, "transformer");
  wte = transformer->register_module("wte", torch::nn::Embedding(c.vocab_size, d));
  wpe = transformer->register_module("wpe", torch::nn::Embedding(c.max_position_embeddings, d));
  auto h = gpt2_holder(*transformer, "h");
  auto norm = [&](torch::nn::Module& parent, const char* name) {
    return parent.register_module(name, torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(c.norm_eps)));
  };
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string path = fmt::format("transformer.h.{}.", i);
    auto info = [&](const std::string& name, SiteRole role) { return SiteInfo{path + name, i, role}; };
    auto block = gpt2_holder(*h, std::to_string(i));
    Block b;
    b.ln_1 = norm(*block, "ln_1");
    auto attn = gpt2_holder(*block, "attn");
    b.c_attn = attn->register_module(
        "c_attn", std::make_shared<LinearSite>(info("attn.c_attn", SiteRole::QueryKeyValue), d, 3 * d, true, true));
    b.attn_c_proj = attn->register_module(
        "c_proj", std::make_shared<LinearSite>(info("attn.c_proj", SiteRole::AttentionOutput), d, d, true, true));
    b.attn_adapters = attn->register_module("adapters", std::make_shared<SublayerSite>(info("attn", SiteRole::AfterAttention)));
    b.kv_site = std::make_shared<AttentionKVSite>(info("attn", SiteRole::AttentionKV));
    b.ln_2 = norm(*block, "ln_2");
    auto mlp = gpt2_holder(*block, "mlp");
    b.c_fc = mlp->register_module(
        "c_fc", std::make_shared<LinearSite>(info("mlp.c_fc", SiteRole::FfnUp), d, c.intermediate_size, true, true));
    b.mlp_c_proj = mlp->register_module(
        "c_proj", std::make_shared<LinearSite>(info("mlp.c_proj", SiteRole::FfnDown), c.intermediate_size, d, true, true));
    b.mlp_adapters = mlp->register_module("adapters", std::make_shared<SublayerSite>(info("mlp", SiteRole::AfterFfn)));
    blocks.push_back(std::move(b));
  }
  ln_f = norm(*transformer, "ln_f");
}

SiteIndex Gpt2LMHeadModel::sites() const {
  SiteIndex index;
  for (auto& b : blocks) {
    for (auto& site : {b.c_attn, b.attn_c_proj, b.c_fc, b.mlp_c_proj}) index.linear[site->path()] = site;
    index.sublayer[b.attn_adapters->path()] = b.attn_adapters;
    index.sublayer[b.mlp_adapters->path()] = b.mlp_adapters;
    index.attention_kv[b.kv_site->path()] = b.kv_site;
  }
  return index;
}

torch::Tensor Gpt2LMHeadModel::embed(const ModelInput& in, const DecoderPass& pass) {
  // Learned positions: a position past the table is an error, not a silent wrap.
  if (pass.positions.max().item<int64_t>() >= config_.max_position_embeddings)
    fail("input reaches position {} but n_positions is {}", pass.positions.max().item<int64_t>(),
         config_.max_position_embeddings);
  torch::Tensor h = wte(in.input_ids) + wpe(pass.positions.clamp_min(0));
  return gpt2_dropout(h, config_.embedding_dropout, is_training());
}

torch::Tensor Gpt2LMHeadModel::run_layers(torch::Tensor hidden, DecoderPass& pass) {
  RowRouting* routing = &pass.context->routing;
  const bool training = is_training();
  const int64_t batch = hidden.size(0), tokens = hidden.size(1), d = config_.hidden_size;
  const int64_t heads = config_.num_attention_heads, head_dim = config_.head_dim;
  const double scale = config_.scale_attn_weights ? 1.0 / std::sqrt(double(head_dim)) : 1.0;
  for (auto& b : blocks) {
    const torch::Tensor a = b.ln_1(hidden);
    const torch::Tensor qkv = b.c_attn->forward(a, routing);
    auto split = [&](int64_t i) { return qkv.narrow(2, i * d, d).view({batch, tokens, heads, head_dim}).transpose(1, 2); };
    torch::Tensor attended = attend(split(0), split(1), split(2), *b.kv_site, pass, scale);
    attended = attended.transpose(1, 2).reshape({batch, tokens, d});
    torch::Tensor out = gpt2_dropout(b.attn_c_proj->forward(attended, routing), config_.residual_dropout, training);
    if (!b.attn_adapters->empty()) out = b.attn_adapters->forward(a, out, routing);
    hidden = hidden + out;

    const torch::Tensor m = b.ln_2(hidden);
    torch::Tensor ff = torch::gelu(b.c_fc->forward(m, routing), "tanh");
    ff = gpt2_dropout(b.mlp_c_proj->forward(ff, routing), config_.residual_dropout, training);
    if (!b.mlp_adapters->empty()) ff = b.mlp_adapters->forward(m, ff, routing);
    hidden = hidden + ff;
  }
  return ln_f(hidden);
}

}  // namespace peft
