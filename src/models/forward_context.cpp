#include "peft/models/forward_context.h"

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

void KVCache::select_rows(const torch::Tensor& rows) {
  for (auto& t : keys_) t = t.index_select(0, rows);
  for (auto& t : values_) t = t.index_select(0, rows);
  key_mask_ = key_mask_.index_select(0, rows);
  batch_ = rows.size(0);
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
