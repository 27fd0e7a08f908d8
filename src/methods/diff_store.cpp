#include "peft/methods/diff_store.h"

#include "peft/error.h"

namespace peft {

// The base checksum of the tensors a diff lists, hashed once per distinct list (with the base restored).
uint64_t DiffStore::base_checksum_for(const SparseDiff& diff) {
  std::string key;
  for (const auto& t : diff.tensors) key += t.name + "\n";
  auto it = checksums_.find(key);
  if (it != checksums_.end()) return it->second;
  const std::string was = active_;
  if (!was.empty()) deactivate();
  const uint64_t sum = model_checksum(*model_, diff);
  if (!was.empty()) activate(was);
  return checksums_.emplace(key, sum).first->second;
}

void DiffStore::add(const std::string& task, SparseDiff diff) {
  if (task.empty()) fail("diff store: a task needs a name");
  if (diff.set) fail("diff store: task {} is an undo record, not a task diff", task);
  const uint64_t base = base_checksum_for(diff);
  if (base != diff.base_checksum)
    fail("diff store: task {}: base checksum {:016x} does not match the model's {:016x} (diff made for another base model?)",
         task, diff.base_checksum, base);
  if (task == active_) deactivate();
  diffs_[task] = std::move(diff);
}

void DiffStore::activate(const std::string& task) {
  auto it = diffs_.find(task);
  if (it == diffs_.end()) fail("diff store: no task named {}", task);
  if (active_ == task) return;
  deactivate();
  undo_ = apply_diff(*model_, it->second, it->second.base_checksum);  // checked against the base in add()
  active_ = task;
}

void DiffStore::deactivate() {
  if (active_.empty()) return;
  revert_diff(*model_, undo_);
  undo_ = SparseDiff();
  active_.clear();
}

void DiffStore::remove(const std::string& task) {
  auto it = diffs_.find(task);
  if (it == diffs_.end()) fail("diff store: no task named {}", task);
  if (active_ == task) deactivate();
  diffs_.erase(it);
}

std::vector<std::string> DiffStore::tasks() const {
  std::vector<std::string> out;
  for (const auto& [name, d] : diffs_) out.push_back(name);
  return out;
}

}  // namespace peft
