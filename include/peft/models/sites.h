#pragma once
// Adaptation sites: the explicit places in model code where PEFT methods act.
//
// A model is written once with plain HF module names. At each place a method may act it calls a site:
//   LinearSite      every adaptable linear layer (LoRA, IA3, diff pruning, AdaMix-LoRA)
//   SublayerSite    after the attention and FFN sublayers, before the residual (adapters)
//   AttentionKVSite keys/values/mask of self-attention (prefix tuning)
// With nothing attached a site is the identity (a LinearSite is a plain nn.Linear), so the model is exactly HF's.
// Each site knows its layer and role, so methods find "every layer's FFN output" on any architecture.
// A site holds a bank of adapters by name; a forward's RowRouting says which rows each adapter sees.
// Methods are torch modules registered as children of the site, so their parameters get names like
// "encoder.layer.0.attention.self.query.lora.lora_A.weight" and follow the model across devices.
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace peft {

class RowRouting;

// What a site is in its layer, whatever the architecture calls it.
enum class SiteRole {
  Query, Key, Value,    // attention projections (GPT-2's fused c_attn is QueryKeyValue)
  QueryKeyValue,
  AttentionOutput,      // attention output projection
  FfnUp, FfnGate, FfnDown,
  AfterAttention,       // sublayer sites
  AfterFfn,
  AttentionKV,          // keys/values of self-attention
  Pooler, Head, Other   // outside the layers
};
const char* site_role_name(SiteRole role);

struct SiteInfo {
  std::string path;  // full HF module path, e.g. model.layers.0.self_attn.q_proj
  int64_t layer = -1;  // -1 outside the layers
  SiteRole role = SiteRole::Other;
};

// One adapter's module at a site: `adapter` is the task it belongs to ("default" when one task),
// `name` the registered child name.
template <typename M>
struct SiteEntry {
  std::string adapter, name;
  std::shared_ptr<M> module;
};

// Where each adapter's entries sit in a site's list (rebuilt on attach/detach), so that a routed
// forward finds its few adapters among thousands without a scan.
using AdapterIndex = std::unordered_map<std::string, std::vector<size_t>>;

// The child name a method of `type` gets at a site for `adapter` (the type itself for "default").
std::string site_child_name(const std::string& adapter, const std::string& type);

// A method whose whole effect is a low-rank update y += scale * x A^T B^T (LoRA outside training). A
// routed site applies such updates of many adapters in one batched product over the rows, each row
// with its own adapter's A and B (the Punica / S-LoRA gathered-matrix idea), instead of one small
// product per adapter.
struct LowRankUpdate {
  torch::Tensor a, b;  // (r, in), (out, r)
  double scale = 1.0;
};

// A method acting on one linear layer y = x W^T + b. Each hook defaults to "no change".
class LinearMethod : public torch::nn::Module {
 public:
  // The weight actually used (diff pruning: W + z * w).
  virtual torch::Tensor effective_weight(const torch::Tensor& weight) { return weight; }
  virtual torch::Tensor effective_bias(const torch::Tensor& bias) { return bias; }
  // Transform of the layer input (IA3 on feed-forward layers scales the input).
  virtual torch::Tensor transform_input(const torch::Tensor& x) { return x; }
  // Transform of the output given the original input (LoRA adds B A x; IA3 on keys/values scales).
  virtual torch::Tensor transform_output(const torch::Tensor& x, torch::Tensor y) { return y; }
  // Whether effective_weight/effective_bias/transform_input change anything (then routed rows need
  // their own matmul instead of a correction of the shared one).
  virtual bool changes_weight_or_input() const { return false; }
  // Set when transform_output is exactly a LowRankUpdate right now (not merged, no dropout active).
  virtual std::optional<LowRankUpdate> low_rank_update() const { return std::nullopt; }
};

class LinearSite : public torch::nn::Module {
 public:
  // `fan_in_fan_out`: the weight is stored (in, out), as GPT-2's Conv1D stores it.
  LinearSite(SiteInfo info, int64_t in_features, int64_t out_features, bool bias = true, bool fan_in_fan_out = false);

  torch::Tensor forward(const torch::Tensor& x, RowRouting* routing = nullptr);
  void attach(const std::string& adapter, const std::string& type, std::shared_ptr<LinearMethod> method);
  void detach(const std::string& adapter, const std::string& type);
  const std::vector<SiteEntry<LinearMethod>>& methods() const { return methods_; }

  const SiteInfo& info() const { return info_; }
  const std::string& path() const { return info_.path; }
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool fan_in_fan_out() const { return fan_in_fan_out_; }
  // The weight as (out, in), whatever the storage layout (a view for Conv1D storage).
  torch::Tensor weight_out_in() const { return fan_in_fan_out_ ? weight.t() : weight; }

  torch::Tensor weight;  // (out, in) HF Linear layout, or (in, out) with fan_in_fan_out
  torch::Tensor bias;    // (out) or undefined

 private:
  torch::Tensor base(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
  SiteInfo info_;
  int64_t in_features_, out_features_;
  bool fan_in_fan_out_;
  std::vector<SiteEntry<LinearMethod>> methods_;
  AdapterIndex index_;
};

// A method acting on a sublayer's output h given its input x (sequential adapters use h, parallel ones x).
class SublayerMethod : public torch::nn::Module {
 public:
  virtual torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& h) = 0;
};

class SublayerSite : public torch::nn::Module {
 public:
  explicit SublayerSite(SiteInfo info) : info_(std::move(info)) {}
  // Methods run in attachment order, each seeing the previous one's output as h.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor h, RowRouting* routing = nullptr);
  void attach(const std::string& adapter, const std::string& type, std::shared_ptr<SublayerMethod> method);
  void detach(const std::string& adapter, const std::string& type);
  const SiteInfo& info() const { return info_; }
  const std::string& path() const { return info_.path; }
  bool empty() const { return methods_.empty(); }

 private:
  SiteInfo info_;
  std::vector<SiteEntry<SublayerMethod>> methods_;
  AdapterIndex index_;
};

// Keys and values of one attention layer, shaped (batch, kv heads, tokens, head_dim), and the additive
// attention mask, (batch, 1, 1, tokens) or (batch, 1, queries, tokens); a method may extend all three
// along the token axis. The model passes an undefined mask when nothing is masked; the site fills in
// zeros before any method runs.
struct AttentionKV {
  torch::Tensor key, value, mask;
};

class AttentionKVMethod : public torch::nn::Module {
 public:
  // Methods only prepend tokens (the site masks them for rows routed elsewhere).
  virtual void apply(int64_t layer_index, AttentionKV& kv) = 0;
  // Tokens this method puts in front of the input (prefix tuning: its virtual tokens), which shift
  // the input's position ids as past tokens do.
  virtual int64_t virtual_tokens() const { return 0; }
};

class AttentionKVSite : public torch::nn::Module {
 public:
  explicit AttentionKVSite(SiteInfo info) : info_(std::move(info)) {}
  void forward(AttentionKV& kv, RowRouting* routing = nullptr);
  // The method is usually shared by all layers (one prefix table), so it is held, not registered.
  void attach(const std::string& adapter, const std::string& type, std::shared_ptr<AttentionKVMethod> method);
  void detach(const std::string& adapter, const std::string& type);
  const SiteInfo& info() const { return info_; }
  const std::string& path() const { return info_.path; }
  int64_t layer_index() const { return info_.layer; }
  bool empty() const { return methods_.empty(); }
  int64_t virtual_tokens() const;  // the sum over the attached methods
  // Each batch row's virtual tokens: the sum over the methods of the adapters routed to it.
  std::vector<int64_t> virtual_tokens_per_row(const RowRouting& routing, int64_t batch) const;

 private:
  SiteInfo info_;
  std::vector<SiteEntry<AttentionKVMethod>> methods_;
  AdapterIndex index_;
};

}  // namespace peft
