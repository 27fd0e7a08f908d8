#include "peft/models/forward_context.h"

#include <algorithm>

#include "peft/error.h"

namespace peft {

KVCache::KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim,
                 torch::TensorOptions options)
    : capacity_(capacity), batch_(batch) {
  if (layers <= 0 || batch <= 0 || capacity <= 0) fail("KVCache: layers, batch and capacity must be > 0");
  for (int64_t i = 0; i < layers; ++i) {
    keys_.push_back(torch::empty({batch, kv_heads, capacity, head_dim}, options));
    values_.push_back(torch::empty({batch, kv_heads, capacity, head_dim}, options));
  }
  key_mask_ = torch::zeros({batch, capacity}, options.dtype(torch::kLong));
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& key,
                                                        const torch::Tensor& value) {
  if (layer < 0 || layer >= int64_t(keys_.size())) fail("KVCache: no layer {}", layer);
  const int64_t n = key.size(2);
  if (length_ + n > capacity_)
    fail("KVCache: {} cached + {} new tokens exceed the capacity of {} tokens", length_, n, capacity_);
  keys_[layer].narrow(2, length_, n).copy_(key);
  values_[layer].narrow(2, length_, n).copy_(value);
  return {keys_[layer].narrow(2, 0, length_ + n), values_[layer].narrow(2, 0, length_ + n)};
}

void KVCache::commit(const torch::Tensor& mask) {
  const int64_t n = mask.size(1);
  if (length_ + n > capacity_) fail("KVCache: commit of {} tokens exceeds the capacity", n);
  key_mask_.narrow(1, length_, n).copy_(mask);
  length_ += n;
}

int64_t KVCache::first_used() const {
  if (length_ == 0) return 0;
  const torch::Tensor used = key_mask().ne(0).any(0).cpu();
  const torch::Tensor at = used.nonzero();
  return at.numel() == 0 ? length_ : at[0][0].item<int64_t>();
}

void KVCache::select_rows(const torch::Tensor& rows) {
  const torch::Tensor index = rows.to(key_mask_.device());
  key_mask_ = key_mask_.index_select(0, index);
  batch_ = rows.size(0);
  // Positions before the kept rows' first one are dropped; narrowed first so that they are not copied.
  const int64_t start = first_used();
  for (auto& t : keys_) t = t.narrow(2, start, capacity_ - start).index_select(0, index);
  for (auto& t : values_) t = t.narrow(2, start, capacity_ - start).index_select(0, index);
  key_mask_ = key_mask_.narrow(1, start, capacity_ - start);
  length_ -= start;
  capacity_ -= start;
}

void KVCache::join(const KVCache& other, int64_t spare) {
  if (other.keys_.size() != keys_.size()) fail("KVCache: cannot join a cache of {} layers to one of {}", other.keys_.size(), keys_.size());
  if (spare < 0) fail("KVCache: spare must be >= 0");
  const int64_t mine = first_used(), theirs = other.first_used();
  const int64_t my_length = length_ - mine, their_length = other.length_ - theirs;
  const int64_t length = std::max(my_length, their_length), capacity = std::max<int64_t>(1, length + spare);
  const int64_t batch = batch_ + other.batch_;
  // Masked positions must hold finite values (zeros): attention weighs them by 0, and 0 * NaN is NaN.
  auto joined = [&](const torch::Tensor& a, const torch::Tensor& b) {
    torch::Tensor t = torch::zeros({batch, a.size(1), capacity, a.size(3)}, a.options());
    t.narrow(0, 0, batch_).narrow(2, length - my_length, my_length).copy_(a.narrow(2, mine, my_length));
    t.narrow(0, batch_, other.batch_).narrow(2, length - their_length, their_length).copy_(b.narrow(2, theirs, their_length));
    return t;
  };
  std::vector<torch::Tensor> keys, values;
  for (size_t l = 0; l < keys_.size(); ++l) {
    keys.push_back(joined(keys_[l], other.keys_[l]));
    values.push_back(joined(values_[l], other.values_[l]));
  }
  torch::Tensor mask = torch::zeros({batch, capacity}, key_mask_.options());
  mask.narrow(0, 0, batch_).narrow(1, length - my_length, my_length).copy_(key_mask_.narrow(1, mine, my_length));
  mask.narrow(0, batch_, other.batch_).narrow(1, length - their_length, their_length)
      .copy_(other.key_mask_.narrow(1, theirs, their_length).to(mask.device()));
  keys_ = std::move(keys);
  values_ = std::move(values);
  key_mask_ = std::move(mask);
  batch_ = batch;
  length_ = length;
  capacity_ = capacity;
}

void KVCache::reserve(int64_t spare) {
  if (length_ + spare <= capacity_) return;
  const int64_t capacity = length_ + spare;
  auto grown = [&](const torch::Tensor& t) {
    torch::Tensor g = torch::zeros({t.size(0), t.size(1), capacity, t.size(3)}, t.options());
    g.narrow(2, 0, length_).copy_(t.narrow(2, 0, length_));
    return g;
  };
  for (auto& t : keys_) t = grown(t);
  for (auto& t : values_) t = grown(t);
  torch::Tensor mask = torch::zeros({batch_, capacity}, key_mask_.options());
  mask.narrow(1, 0, length_).copy_(key_mask_.narrow(1, 0, length_));
  key_mask_ = std::move(mask);
  capacity_ = capacity;
}

void RowRouting::assign(const std::string& adapter, std::vector<int64_t> rows) {
  auto& mine = rows_[adapter];
  mine.insert(mine.end(), rows.begin(), rows.end());
  batch_index_.erase(adapter);
  token_index_.erase(adapter);
  gathered_.clear();
}

std::vector<std::string> RowRouting::adapters() const {
  std::vector<std::string> out;
  for (auto& [adapter, rows] : rows_)
    if (!rows.empty()) out.push_back(adapter);
  return out;
}

const std::vector<int64_t>& RowRouting::rows(const std::string& adapter) const {
  static const std::vector<int64_t> none;
  auto it = rows_.find(adapter);
  return it == rows_.end() ? none : it->second;
}

void RowRouting::set_token_rows(torch::Tensor token_rows) {
  token_rows_ = std::move(token_rows);
  token_index_.clear();
  gathered_.clear();
}

const torch::Tensor& RowRouting::batch_rows(const std::string& adapter, const torch::Device& device) {
  static const torch::Tensor none;
  auto it = rows_.find(adapter);
  if (it == rows_.end() || it->second.empty()) return none;
  auto cached = batch_index_.find(adapter);
  if (cached == batch_index_.end() || cached->second.device() != device)
    cached = batch_index_.insert_or_assign(adapter, torch::tensor(it->second, torch::kLong).to(device)).first;
  return cached->second;
}

const torch::Tensor& RowRouting::index(const std::string& adapter, const torch::Device& device) {
  const torch::Tensor& rows = batch_rows(adapter, device);
  if (!token_rows_.defined() || !rows.defined()) return rows;
  auto cached = token_index_.find(adapter);
  if (cached == token_index_.end()) {
    torch::Tensor tokens = torch::isin(token_rows_, rows).nonzero().squeeze(1);
    static const torch::Tensor none;
    if (tokens.numel() == 0) return none;
    cached = token_index_.emplace(adapter, tokens).first;
  }
  return cached->second;
}

}  // namespace peft
