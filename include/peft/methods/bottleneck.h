#pragma once
// Bottleneck adapters, one mechanism for the unified view's design points (He et al. 2022):
//   Δh = f(src · W_downᵀ + b_down) · W_upᵀ + b_up,   src = h (sequential) or x (parallel)
//   add: h + Δh   scaled: h + s·Δh   gated: (1 − λ)·h + λ·Δh with λ = sigmoid(src · w_g + b_g) per token
// placed after the attention and/or FFN sublayer (before residual + LayerNorm), where x is the
// sublayer's input and h its output. Houlsby = sequential at both, Pfeiffer = sequential at FFN,
// (scaled) parallel adapter = parallel at FFN; see presets.h.
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/method.h"

namespace peft {

struct BottleneckConfig {
  std::string placement = "ffn";        // attention | ffn | both
  std::string insertion = "sequential";  // sequential | parallel
  std::string composition = "add";      // add | scaled | gated
  double scaling = 1.0;                 // s of the scaled composition
  int64_t r = 64;                       // bottleneck size
  std::string activation = "relu";      // relu | tanh | identity | gelu
  std::string init = "near_identity";   // near_identity (small normal weights) | lora (down Kaiming, up zero)

  void validate() const;
  static BottleneckConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

std::shared_ptr<Method> make_bottleneck(const BottleneckConfig& config);

}  // namespace peft
