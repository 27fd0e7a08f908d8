#pragma once
// Text generation with a KV cache, as HF's generate(): greedy unless a sampling option is set; the
// logits processors in HF's order (repetition penalty, then temperature, top-k, top-p, min-p); batched
// prompts with left padding and the position ids HF derives from the mask.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "peft/methods/adapted_model.h"
#include "peft/models/model.h"

namespace peft {

struct GenerationOptions {
  int64_t max_new_tokens = 32;
  bool do_sample = false;  // set by any sampling option in the CLI
  double temperature = 1.0;
  int64_t top_k = 0;       // 0: off
  double top_p = 1.0;      // 1: off
  double min_p = 0.0;      // 0: off
  double repetition_penalty = 1.0;
  std::vector<int64_t> stop_token_ids;  // a row ends when it emits one (kept in its output)
  int64_t pad_token_id = 0;             // fills left padding and finished rows
  std::optional<uint64_t> seed;
  // Serving several tasks in one batch: each prompt's adapter (task) name, "" for the base model.
  // Empty: every attached adapter applies to every row, as for one task.
  std::vector<std::string> row_adapters;
};

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  // new tokens of each row, up to and including its stop token
  std::vector<bool> stopped;                 // the row ended on a stop token or by the callback, not by length
  int64_t prompt_tokens = 0;                 // columns of the left-padded prompt batch
  double prefill_seconds = 0, decode_seconds = 0;
};

// What a TokenCallback sees after every decoding step.
struct GenerationStep {
  const std::vector<int64_t>& newest;  // each row's newest token, -1 for a row already finished
  std::vector<bool>& finish;           // set finish[r] to end row r after this token (stop strings)
};
using TokenCallback = std::function<void(GenerationStep& step)>;

// Generates for every prompt (token ids, no padding). `model` runs in eval mode with whatever methods
// are attached to its sites. A prompt longer than the model's context is an error; generation stops
// at the context length (max_new_tokens is cut so that positions stay within it).
GenerationResult generate(Model& model, const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_step = {});
// The same with the methods of `model` prepared once for the whole generation (diff pruning's weights).
GenerationResult generate(AdaptedModel& model, const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_step = {});

// Applies the logits processors of `options` to next-token logits (batch, vocab); `seen` (batch, n) are
// the ids so far (prompt + generated) for the repetition penalty. Exposed for tests.
torch::Tensor process_logits(torch::Tensor logits, const torch::Tensor& seen, const GenerationOptions& options);

}  // namespace peft
