#pragma once
// Sparse task files for diff pruning: per pruned base tensor the flat indices of its non-zero
// entries (delta-coded LEB128 varints) and their values (F32, F16 or BF16), plus the dense
// classifier head, tied to the base model by a checksum over the pruned base tensors.
//
// File layout (little-endian):
//   "PEFTDIF1" | u64 header length | header JSON | payload | u64 hash of everything before it
//   header: {"version", "kind": "add"|"set", "base_checksum": hex, "base_model", "value_dtype",
//            "tensors": [{"name", "shape", "nnz", "index_bytes"}], "head": [{"name", "shape"}]}
//   payload: per tensor its index varints (first index, then gaps) and nnz values; then the head (F32).
// kind "add" is a task diff (theta += value); kind "set" holds exact original values (an undo record).
// Applying checks names, shapes and the checksum before touching the model, so a bad file or a
// diff for another base leaves the model unchanged.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "peft/models/encoder.h"

namespace peft {

inline const std::string kDiffFileName = "diff.peftdiff";

struct TensorDiff {
  std::string name;             // HF parameter name, e.g. bert.encoder.layer.0.attention.self.query.weight
  std::vector<int64_t> shape;
  torch::Tensor indices;        // int64 (nnz), flat, strictly increasing
  torch::Tensor values;         // float32 (nnz), as read back (rounded to value_dtype when written)
};

struct SparseDiff {
  bool set = false;             // false: add values; true: set them (undo record)
  uint64_t base_checksum = 0;   // base_checksum() of the tensors listed, before applying
  std::string base_model;       // informational
  torch::ScalarType value_dtype = torch::kFloat;  // kFloat, kHalf or kBFloat16 on disk
  std::vector<TensorDiff> tensors;                // every pruned tensor (nnz may be 0)
  std::vector<std::pair<std::string, torch::Tensor>> head;  // dense head tensors (HF names)

  int64_t nnz() const;
  int64_t numel() const;                // entries of the pruned tensors
  int64_t dense_bytes() const;          // an F32 dense save of the same tensors and head
};

// 64-bit hash over names, shapes and F32 bytes of `tensors` (in order).
uint64_t base_checksum(const std::vector<std::pair<std::string, torch::Tensor>>& tensors);
// The checksum of the model's tensors that `diff` lists (their names must exist, shapes match).
uint64_t model_checksum(Model& model, const SparseDiff& diff);

void write_sparse_diff(const std::string& path, const SparseDiff& diff);  // atomically
SparseDiff read_sparse_diff(const std::string& path);  // throws naming the file on any damage
int64_t file_size(const std::string& path);

// Applies `diff` to the model's parameters in place and returns the undo record (kind "set": the
// exact original values at the touched entries and the original head). `current_checksum`, when
// the caller knows it, saves hashing the model. Throws (model untouched) on a name, shape, index or
// head mismatch, or when diff.base_checksum differs (a diff for another base).
SparseDiff apply_diff(Model& model, const SparseDiff& diff,
                      std::optional<uint64_t> current_checksum = std::nullopt);
// Restores what apply_diff changed, bit-exactly (no checksum: the record is the caller's own).
void revert_diff(Model& model, const SparseDiff& undo);

}  // namespace peft
