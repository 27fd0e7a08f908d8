#pragma once
// Prefix tuning (Li & Liang 2021): l learned key/value vectors per layer prepended to every
// self-attention's keys and values; the attention mask gets l leading "attend" entries and the real
// tokens' position ids start at l (the prefix acts as past tokens, as in HF/PEFT).
// With prefix_projection the table is P = MLP(E): E (l × d) → Linear(d, mid) → tanh →
// Linear(mid, 2·layers·d); finalize() precomputes P and drops the MLP, which is also what is saved
// (PEFT's "prompt_embeddings", shape (l, 2·layers·d) viewed as (l, 2·layers, heads, head_dim):
// slot 2i is layer i's key, 2i + 1 its value).
#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/method.h"

namespace peft {

struct PrefixConfig {
  int64_t num_virtual_tokens = 20;
  bool prefix_projection = false;
  int64_t encoder_hidden_size = 0;  // MLP mid size; 0 = the model's hidden size (PEFT's default)

  void validate() const;
  static PrefixConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

std::shared_ptr<Method> make_prefix(const PrefixConfig& config);

}  // namespace peft
