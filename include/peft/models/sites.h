#pragma once
// Adaptation sites: the explicit places in model code where PEFT methods act.
//
// A model is written once with plain HF module names. At each place a method may act it calls a site:
//   LinearSite      every adaptable linear layer (LoRA, IA3, diff pruning, AdaMix-LoRA)
//   SublayerSite    after the attention and FFN sublayers, before residual + LayerNorm (adapters)
//   AttentionKVSite keys/values/mask of self-attention (prefix tuning)
// With nothing attached a site is the identity (a LinearSite is a plain nn.Linear), so the model is exactly HF's.
// Methods are torch modules registered as children of the site, so their parameters get names like
// "encoder.layer.0.attention.self.query.lora.A" and follow the model across devices.
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace peft {

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
};

class LinearSite : public torch::nn::Module {
 public:
  LinearSite(std::string path, int64_t in_features, int64_t out_features, bool bias = true);

  torch::Tensor forward(const torch::Tensor& x);
  void attach(const std::string& name, std::shared_ptr<LinearMethod> method);
  void detach(const std::string& name);
  const std::vector<std::pair<std::string, std::shared_ptr<LinearMethod>>>& methods() const { return methods_; }

  const std::string& path() const { return path_; }  // HF module path, e.g. encoder.layer.0.attention.self.query
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  torch::Tensor weight;  // (out, in), HF layout
  torch::Tensor bias;    // (out) or undefined

 private:
  std::string path_;
  int64_t in_features_, out_features_;
  std::vector<std::pair<std::string, std::shared_ptr<LinearMethod>>> methods_;
};

// A method acting on a sublayer's output h given its input x (sequential adapters use h, parallel ones x).
class SublayerMethod : public torch::nn::Module {
 public:
  virtual torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& h) = 0;
};

class SublayerSite : public torch::nn::Module {
 public:
  explicit SublayerSite(std::string path) : path_(std::move(path)) {}
  // Methods run in attachment order, each seeing the previous one's output as h.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor h);
  void attach(const std::string& name, std::shared_ptr<SublayerMethod> method);
  void detach(const std::string& name);
  const std::string& path() const { return path_; }
  bool empty() const { return methods_.empty(); }

 private:
  std::string path_;
  std::vector<std::pair<std::string, std::shared_ptr<SublayerMethod>>> methods_;
};

// Keys and values of one attention layer, shaped (batch, heads, tokens, head_dim), and the additive
// attention mask (batch, 1, 1, tokens); a method may extend all three along the token axis.
// The model passes an undefined mask when nothing is padded; the site fills in zeros before any method runs.
struct AttentionKV {
  torch::Tensor key, value, mask;
};

class AttentionKVMethod : public torch::nn::Module {
 public:
  virtual void apply(int64_t layer_index, AttentionKV& kv) = 0;
};

class AttentionKVSite : public torch::nn::Module {
 public:
  AttentionKVSite(std::string path, int64_t layer_index) : path_(std::move(path)), layer_index_(layer_index) {}
  void forward(AttentionKV& kv);
  // The method is usually shared by all layers (one prefix table), so it is held, not registered.
  void attach(const std::string& name, std::shared_ptr<AttentionKVMethod> method);
  void detach(const std::string& name);
  const std::string& path() const { return path_; }
  int64_t layer_index() const { return layer_index_; }

 private:
  std::string path_;
  int64_t layer_index_;
  std::vector<std::pair<std::string, std::shared_ptr<AttentionKVMethod>>> methods_;
};

}  // namespace peft
