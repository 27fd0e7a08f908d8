#pragma once
// Continuous batching: a running batch of generations that prompts join and leave between decoding
// steps, as LLM servers schedule them (Orca's iteration-level scheduling). Each row keeps its own
// positions, sampling options, token budget and adapter; the KV cache holds the rows right-aligned
// (their newest positions line up, padding on the left is masked), so that one step is one forward of
// the whole batch however far each row has got. generate() is this session run to the end.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "peft/generate/generate.h"
#include "peft/models/forward_context.h"
#include "peft/models/model.h"

namespace peft {

struct DecodeRow {
  uint64_t id = 0;               // the caller's name for the row, unique among the running rows
  std::vector<int64_t> prompt;   // token ids, no padding
  std::string adapter;           // routed sessions: the row's adapter (task), "" for the base model
  // Sampling, stop ids and max_new_tokens (row_adapters is not used). Rows of one add() that share the
  // object share one sampler: its seed seeds one generator that only they draw from, so a seeded
  // request repeats whoever else is decoding.
  std::shared_ptr<const GenerationOptions> options;
};

struct DecodedToken {
  uint64_t row = 0;
  int64_t token = -1;    // -1: none (a prompt that fills the context, or max_new_tokens 0)
  bool last = false;     // the row ended with this token and has left the session
  bool stopped = false;  // it ended on a stop token (else by length)
};

class DecodeSession {
 public:
  // `routed`: each row names its adapter and sees only that one; otherwise every method attached to
  // the model applies to every row. The model runs in eval mode and must outlive the session.
  DecodeSession(Model& model, bool routed);

  // Prefills the prompts as one left-padded batch (one forward), picks each one's first token and joins
  // them to the running rows. One DecodedToken per row, in order. If it throws, the session is unchanged.
  std::vector<DecodedToken> add(const std::vector<DecodeRow>& rows);
  // One decoding step: the next token of every running row (one forward), in the rows' order.
  std::vector<DecodedToken> step();
  // Ends a row now (a stop string matched, its client went away); unknown ids are ignored.
  void remove(uint64_t row);

  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }

 private:
  struct Sampler;
  struct Row {
    uint64_t id = 0;
    std::string adapter;
    std::shared_ptr<Sampler> sampler;
    std::vector<int64_t> seen;  // prompt and generated ids, for the repetition penalty
    int64_t next_token = 0;     // fed at the next step; its position id is seen.size() - 1
    int64_t budget = 0;         // tokens it may still generate
  };

  std::vector<int64_t> virtual_tokens_per_row(const RowRouting& routing, int64_t batch) const;
  RowRouting routing_of(const std::vector<const Row*>& rows) const;
  // The next token of each row from its logits (rows.size(), vocab).
  std::vector<int64_t> choose(const torch::Tensor& logits, const std::vector<Row*>& rows) const;
  // Advances rows by their tokens; rows that end leave (cache and routing follow).
  std::vector<DecodedToken> advance(std::vector<Row>& rows, const std::vector<int64_t>& tokens, std::vector<bool>& ends);
  void keep_rows(const std::vector<bool>& leaving);

  Model& model_;
  const bool routed_;
  std::vector<Row> rows_;                // running rows, in the cache's row order
  std::optional<KVCache> cache_;         // set while rows run
  ForwardContext context_;               // the running rows' cache and routing
};

}  // namespace peft
