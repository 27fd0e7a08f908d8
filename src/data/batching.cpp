#include "peft/data/batching.h"

#include <numeric>
#include <random>

#include "peft/error.h"

namespace peft::data {
namespace {

// A generator per (seed, epoch, purpose) so that the epoch's order never depends on earlier epochs.
std::mt19937_64 epoch_rng(uint64_t seed, int64_t epoch, uint64_t purpose) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(purpose)};
  return std::mt19937_64(seq);
}

// Fisher-Yates with our own draws: std::shuffle's algorithm differs between standard libraries.
template <typename T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

}  // namespace

TokenizedDataset tokenize(const Dataset& data, const tok::Tokenizer& tokenizer, size_t max_seq_length) {
  TokenizedDataset out;
  out.regression = data.regression();
  out.pad_id = tokenizer.pad_id().value_or(0);
  tok::EncodeOptions options;
  options.max_length = max_seq_length;
  options.truncation = tok::Truncation::LongestFirst;
  out.encodings.reserve(data.size());
  for (const Example& ex : data.examples) {
    if (ex.text_pair) out.encodings.push_back(tokenizer.encode(ex.text, std::string_view(*ex.text_pair), options));
    else out.encodings.push_back(tokenizer.encode(ex.text, std::nullopt, options));
  }
  if (data.has_labels()) {
    for (const Example& ex : data.examples) {
      if (!ex.label) fail("{}:{}: example has no label", data.source, ex.line);
      out.labels.push_back(*ex.label);
    }
  }
  return out;
}

std::vector<std::vector<size_t>> plan_batches(const TokenizedDataset& data, const BatchOptions& options, int64_t epoch) {
  if (options.batch_size == 0) fail("batch size must be at least 1");
  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  auto rng = epoch_rng(options.seed, epoch, 1);
  if (options.shuffle) shuffle(order, rng);
  if (options.bucket_window > 0) {
    const size_t window = options.bucket_window * options.batch_size;
    for (size_t start = 0; start < order.size(); start += window) {
      auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end,
                       [&](size_t a, size_t b) { return data.encodings[a].size() < data.encodings[b].size(); });
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < order.size(); start += options.batch_size)
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + options.batch_size)));
  // Sorted buckets would otherwise always run short batches first.
  if (options.bucket_window > 0 && options.shuffle) shuffle(batches, rng);
  return batches;
}

Batch collate(const TokenizedDataset& data, const std::vector<size_t>& indices, torch::Device device) {
  if (indices.empty()) fail("collate: empty batch");
  size_t longest = 0;
  for (size_t i : indices) longest = std::max(longest, data.encodings.at(i).size());
  const auto rows = static_cast<int64_t>(indices.size()), cols = static_cast<int64_t>(longest);
  auto ids = torch::full({rows, cols}, data.pad_id, torch::kLong);
  auto mask = torch::zeros({rows, cols}, torch::kLong), types = torch::zeros({rows, cols}, torch::kLong);
  for (int64_t r = 0; r < rows; ++r) {
    const tok::Encoding& e = data.encodings[indices[static_cast<size_t>(r)]];
    std::copy(e.ids.begin(), e.ids.end(), ids[r].data_ptr<int64_t>());
    std::copy(e.attention_mask.begin(), e.attention_mask.end(), mask[r].data_ptr<int64_t>());
    std::copy(e.type_ids.begin(), e.type_ids.end(), types[r].data_ptr<int64_t>());
  }
  Batch batch;
  batch.indices = indices;
  batch.input = {ids.to(device), mask.to(device), types.to(device)};
  if (!data.token_labels.empty()) {
    auto labels = torch::full({rows, cols}, int64_t{-100}, torch::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      const auto& l = data.token_labels.at(indices[static_cast<size_t>(r)]);
      std::copy(l.begin(), l.end(), labels[r].data_ptr<int64_t>());
    }
    batch.labels = labels.to(device);
  } else if (!data.labels.empty()) {
    std::vector<float> values;
    for (size_t i : indices) values.push_back(data.labels[i]);
    auto labels = torch::tensor(values, torch::kFloat);
    batch.labels = (data.regression ? labels : labels.to(torch::kLong)).to(device);
  }
  return batch;
}

}  // namespace peft::data
