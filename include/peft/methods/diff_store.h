#pragma once
// Many diff-pruned tasks over one base model in memory: each task is a sparse diff (sparse_diff.h);
// switching task reverts the active one from its undo record and applies the next, so it costs time
// proportional to the two diffs' non-zeros (plus the small head), never a pass over the base.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "peft/methods/sparse_diff.h"
#include "peft/models/encoder.h"
#include "peft/models/model.h"

namespace peft {

class DiffStore {
 public:
  // `model` holds the base weights (it must not have another diff applied).
  explicit DiffStore(std::shared_ptr<Model> model) : model_(std::move(model)) {}
  explicit DiffStore(SequenceClassifier model) : DiffStore(std::shared_ptr<Model>(model.ptr())) {}

  // Checks the diff against the base (names, shapes, checksum) now, so activate() cannot fail on it.
  void add(const std::string& task, SparseDiff diff);
  void add_file(const std::string& task, const std::string& path) { add(task, read_sparse_diff(path)); }

  void remove(const std::string& task);   // reverts it first when it is active
  void activate(const std::string& task);  // reverts the active task, applies this one
  void deactivate();                       // back to the base weights, bit-exactly
  const std::string& active() const { return active_; }  // "" for the base
  std::vector<std::string> tasks() const;
  const std::shared_ptr<Model>& model() { return model_; }

 private:
  uint64_t base_checksum_for(const SparseDiff& diff);

  std::shared_ptr<Model> model_;
  std::map<std::string, SparseDiff> diffs_;
  std::map<std::string, uint64_t> checksums_;  // of the base, per list of tensor names
  std::string active_;
  SparseDiff undo_;
};

}  // namespace peft
