#pragma once
// From examples to model inputs: tokenize once, then cut the data set into batches padded to the
// longest example of each batch (dynamic padding). Batch order is a pure function of
// (seed, epoch), so a resumed run sees exactly the batches an uninterrupted one would.
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "peft/data/dataset.h"
#include "peft/models/encoder.h"
#include "peft/tokenize/tokenizer.h"

namespace peft::data {

// The token ids of every example, unpadded, truncated to max_seq_length (special tokens included).
struct TokenizedDataset {
  std::vector<tok::Encoding> encodings;
  std::vector<float> labels;  // empty when the data set has none
  // Causal LM: one label per token (-100: no loss there, e.g. the prompt); collate pads with -100.
  std::vector<std::vector<int64_t>> token_labels;
  bool regression = false;
  int64_t pad_id = 0;
  size_t size() const { return encodings.size(); }
};

TokenizedDataset tokenize(const Dataset& data, const tok::Tokenizer& tokenizer, size_t max_seq_length);

struct Batch {
  ModelInput input;          // (batch, longest) int64 tensors
  torch::Tensor labels;        // (batch,) int64 for classes, float for regression, (batch, longest) int64 per
                               // token for causal LMs; undefined if unlabelled
  std::vector<size_t> indices; // which examples, in batch order
};

struct BatchOptions {
  size_t batch_size = 32;
  bool shuffle = false;
  // Length bucketing: within windows of bucket_window batches, examples are sorted by length before
  // being cut into batches (less padding); batch order is then shuffled. 0 disables it.
  size_t bucket_window = 0;
  uint64_t seed = 0;
};

// The example indices of each batch for one epoch.
std::vector<std::vector<size_t>> plan_batches(const TokenizedDataset& data, const BatchOptions& options, int64_t epoch);

// Pads the chosen examples to the longest of them and stacks them into tensors on `device`.
Batch collate(const TokenizedDataset& data, const std::vector<size_t>& indices, torch::Device device = torch::kCPU);

}  // namespace peft::data
