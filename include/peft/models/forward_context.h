#pragma once
// State that belongs to one forward pass, not to the model: the KV cache of a generation, and which
// rows of the batch use which adapter. Keeping it out of the model lets one frozen base serve batches
// that mix tasks, from several threads.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace peft {

// Keys and values of every layer for a batch being generated, preallocated to `capacity` tokens so
// that decoding never reallocates. Prefix tuning's virtual tokens sit at the front like past tokens.
class KVCache {
 public:
  KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim,
          torch::TensorOptions options);

  int64_t length() const { return length_; }  // tokens cached, in every layer
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return batch_; }
  // Writes this pass's keys/values (batch, kv_heads, n, head_dim) of `layer` after the cached ones and
  // returns views of all of them. Every layer appends the same n; commit(n) then advances length().
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& key, const torch::Tensor& value);
  // Which cached positions are real (1) or padding (0): (batch, length()).
  torch::Tensor key_mask() const { return key_mask_.narrow(1, 0, length_); }
  // Ends a pass that appended n positions whose padding mask is `mask` (batch, n).
  void commit(const torch::Tensor& mask);
  // Keeps only `rows` of the batch (finished sequences leave a batched generation); leading positions
  // that no remaining row uses are dropped.
  void select_rows(const torch::Tensor& rows);
  // Continuous batching: appends `other`'s rows after these, both right-aligned (their newest positions
  // line up, the shorter side gets masked positions on the left), with room for `spare` more tokens.
  void join(const KVCache& other, int64_t spare);
  // Makes room for `spare` more tokens after length().
  void reserve(int64_t spare);

 private:
  int64_t first_used() const;  // the first position some row uses (length() when none)

  std::vector<torch::Tensor> keys_, values_;
  torch::Tensor key_mask_;
  int64_t length_ = 0, capacity_, batch_;
};

// Which batch rows each adapter applies to. Empty (the default): every attached adapter applies to
// every row, as in training one task. Once any adapter is assigned, adapters with no rows apply to none.
class RowRouting {
 public:
  // What a site prepared for this routing (its adapters' matrices gathered per row), reused by every
  // pass with the same routing, e.g. each decoding step of a generation. Keyed by the site.
  struct Gathered {
    torch::Tensor index, a, b;          // rows; (m, r, in); (m, out, r) with the scale folded in
    std::vector<std::string> adapters;  // the adapters it covers
  };
  std::map<const void*, Gathered>& gathered() { return gathered_; }

  void assign(const std::string& adapter, std::vector<int64_t> rows);
  bool active() const { return !rows_.empty(); }
  // The adapters that have rows, by name.
  std::vector<std::string> adapters() const;
  // The batch rows assigned to `adapter` (empty: none).
  const std::vector<int64_t>& rows(const std::string& adapter) const;
  // Index along dim 0 of a site's input for `adapter`: batch rows, or token indices when the model runs
  // packed (token_rows set). Undefined when the adapter applies to no row.
  const torch::Tensor& index(const std::string& adapter, const torch::Device& device);
  // Batch rows of `adapter` (undefined: none), for sites that always see the (batch, ...) grid.
  const torch::Tensor& batch_rows(const std::string& adapter, const torch::Device& device);
  // Packed layouts: the batch row of every packed token (n). Undefined: inputs are (batch, tokens, ...).
  void set_token_rows(torch::Tensor token_rows);

 private:
  std::map<std::string, std::vector<int64_t>> rows_;
  std::map<std::string, torch::Tensor> batch_index_, token_index_;
  torch::Tensor token_rows_;
  std::map<const void*, Gathered> gathered_;
};

struct ForwardContext {
  KVCache* cache = nullptr;  // set during generation
  RowRouting routing;
  // LM heads: compute logits for the last position only (generation needs no more).
  bool last_position_only = false;
};

}  // namespace peft
