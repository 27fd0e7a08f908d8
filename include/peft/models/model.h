#pragma once
// The one interface every model implements (encoders and decoders alike), so that methods, the trainer,
// adapter files and serving work on any architecture without knowing which one it is:
//   - arch():    the architecture in neutral terms (hidden size, heads, kv heads, layers, positions)
//   - sites():   every adaptation site by full HF module path, each with its layer and role
//   - head():    what the model outputs (class logits, a regression value, LM logits) and its loss
//   - forward(): one pass, with a ForwardContext for the state that belongs to this pass only
//                (KV cache, position ids, which rows use which adapter), never to the model.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/types.h>

#include "peft/models/forward_context.h"
#include "peft/models/sites.h"

namespace peft {

// One batch of token ids. attention_mask, token_type_ids and position_ids may be undefined.
struct ModelInput {
  torch::Tensor input_ids;       // (batch, tokens) int64
  torch::Tensor attention_mask;  // (batch, tokens) 1 = real token
  torch::Tensor token_type_ids;  // (batch, tokens), encoders with token types only
  // Encoders: skip the work on padding tokens. Trailing all-padding columns are dropped, and the
  // position-wise layers run on real tokens only. Real tokens never attend to padding, so their vectors
  // do not change; padding positions come back as zeros. Heads that ignore padding set it themselves.
  bool skip_padding_columns = false;
  torch::Tensor position_ids;  // (batch, tokens), decoders; undefined: 0, 1, ... after any cached tokens
};

// The architecture in terms every method understands.
struct ModelArch {
  std::string model_type;  // HF's model_type: "bert", "roberta", "gpt2", "llama"
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads without grouped-query attention
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_positions = 0;       // position ids available (learned tables) or the context length (RoPE)
  int64_t reserved_positions = 0;  // positions before the first real token (RoBERTa: padding_idx + 1)
  bool causal = false;
};

enum class HeadKind { Classification, MultiLabel, Regression, CausalLM };

// What forward() returns and how it is trained.
struct HeadSpec {
  HeadKind kind = HeadKind::Classification;
  int64_t num_outputs = 0;  // labels, 1 for regression, vocabulary size for LM heads

  bool regression() const { return kind == HeadKind::Regression; }
  // HF's loss for this head: cross-entropy, MSE, BCE; for LM heads the next-token cross-entropy with
  // labels shifted inside (labels == input ids, -100 = ignored), as HF's *ForCausalLM compute it.
  torch::Tensor loss(const torch::Tensor& output, const torch::Tensor& labels) const;
  // PEFT's task_type for adapter files ("SEQ_CLS", "CAUSAL_LM").
  std::string peft_task_type() const;
};

// Every adaptation site of a model, keyed by full module path.
struct SiteIndex {
  std::map<std::string, std::shared_ptr<LinearSite>> linear;
  std::map<std::string, std::shared_ptr<SublayerSite>> sublayer;
  std::map<std::string, std::shared_ptr<AttentionKVSite>> attention_kv;

  // The sites of one role, in layer order (e.g. every layer's FFN sublayer for an adapter).
  std::vector<std::shared_ptr<LinearSite>> linear_with(SiteRole role) const;
  std::vector<std::shared_ptr<SublayerSite>> sublayer_with(SiteRole role) const;
  std::vector<std::shared_ptr<AttentionKVSite>> attention_kv_sites() const;  // layer order
};

class Model : public torch::nn::Module {
 public:
  virtual const ModelArch& arch() const = 0;
  virtual HeadSpec head() const = 0;
  virtual SiteIndex sites() const = 0;

  // The head's output for the batch (logits, or LM logits (batch, tokens, vocab)).
  virtual torch::Tensor forward(const ModelInput& in, ForwardContext& context) = 0;
  torch::Tensor forward(const ModelInput& in) {
    ForwardContext context;
    return forward(in, context);
  }

  // Parameter-name prefixes of the head ("classifier.", "lm_head."): trained and saved with methods
  // that train the head (PEFT's modules_to_save). Empty where the head has no parameters of its own
  // (a tied LM head).
  virtual std::vector<std::string> head_parameter_prefixes() const = 0;
  // PEFT's modules_to_save entry naming the head (e.g. "classifier"); empty: none.
  virtual std::string head_module_name() const = 0;
  // Names of the direct children that are the base model (the rest were added by methods).
  virtual std::vector<std::string> base_children() const = 0;
  // A base tensor on the model's device and dtype (methods create their modules to match it).
  virtual torch::Tensor reference_weight() const = 0;
  // config.json of this model as HF writes it (for merged exports).
  virtual nlohmann::json hf_config() const = 0;
};

}  // namespace peft
