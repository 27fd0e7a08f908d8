#include "peft/models/sites.h"

#include <limits>

#include <torch/nn/functional/linear.h>

#include "peft/error.h"
#include "peft/models/forward_context.h"

namespace peft {
namespace {

template <typename Vec>
void erase_entry(Vec& methods, const std::string& name, const std::string& path) {
  auto it = std::find_if(methods.begin(), methods.end(), [&](auto& e) { return e.name == name; });
  if (it == methods.end()) fail("{}: no method named \"{}\" attached", path, name);
  methods.erase(it);
}

template <typename Vec>
void check_new_name(const Vec& methods, const std::string& name, const std::string& path) {
  for (auto& e : methods)
    if (e.name == name) fail("{}: a method named \"{}\" is already attached", path, name);
}

// Outside autograd, routed rows may be written into a site's output in place and prepared matrices
// reused across passes; with autograd both would break the graph.
bool without_autograd() { return !torch::GradMode::is_enabled() || c10::InferenceMode::is_enabled(); }

// Rows beyond this go through per-adapter products: gathering each row's matrices costs r x (in + out)
// floats per row, which only pays off when rows are few.
constexpr int64_t kGatheredRowsLimit = 64;

using LinearGroups = std::vector<std::pair<std::string, std::vector<const SiteEntry<LinearMethod>*>>>;

// The groups that are a single LoRA-like update of one common rank, their matrices gathered per row
// (prepared once per routing and site, then reused by every pass with that routing).
RowRouting::Gathered gather_low_rank(const LinearGroups& groups, const torch::Tensor& x, RowRouting& routing) {
  RowRouting::Gathered out;
  std::vector<torch::Tensor> as, bs, indices, owners;
  std::vector<double> scales;
  int64_t rank = -1;
  for (const auto& [adapter, entries] : groups) {
    if (entries.size() != 1) continue;
    const auto update = entries.front()->module->low_rank_update();
    if (!update || (rank >= 0 && update->a.size(0) != rank)) continue;
    const torch::Tensor& index = routing.index(adapter, x.device());
    if (!index.defined()) continue;
    rank = update->a.size(0);
    as.push_back(update->a);
    bs.push_back(update->b * update->scale);
    indices.push_back(index);
    owners.push_back(torch::full({index.size(0)}, static_cast<int64_t>(as.size() - 1), index.options()));
    out.adapters.push_back(adapter);
  }
  if (as.size() < 2) return {};  // nothing to batch: the general path is as fast
  const torch::Tensor owner = torch::cat(owners);
  out.index = torch::cat(indices);
  out.a = torch::stack(as).index_select(0, owner);  // (m, r, in)
  out.b = torch::stack(bs).index_select(0, owner);  // (m, out, r)
  return out;
}

// Applies the low-rank groups in one batched product over their rows, x_rows (m, t, in) x A_rows^T
// x B_rows^T, each row with its adapter's matrices; those groups are emptied (done).
torch::Tensor apply_low_rank_gathered(const void* site, LinearGroups& groups, const torch::Tensor& x, torch::Tensor y,
                                      RowRouting& routing) {
  // Prepared matrices are reused only without autograd (they would hold stale graphs in training).
  const bool reuse = without_autograd();
  auto& cache = routing.gathered();
  auto it = cache.find(site);
  if (it == cache.end() || !reuse) it = cache.insert_or_assign(site, gather_low_rank(groups, x, routing)).first;
  const RowRouting::Gathered& g = it->second;
  if (g.adapters.empty()) return y;
  const int64_t m = g.index.size(0);
  const torch::Tensor rows = x.index_select(0, g.index).reshape({m, -1, x.size(-1)});
  std::vector<int64_t> shape = y.sizes().vec();
  shape[0] = m;
  const torch::Tensor delta = torch::bmm(torch::bmm(rows, g.a.transpose(1, 2)), g.b.transpose(1, 2)).reshape(shape);
  for (auto& group : groups)
    if (std::find(g.adapters.begin(), g.adapters.end(), group.first) != g.adapters.end()) group.second.clear();
  if (reuse) return y.index_add_(0, g.index, delta);
  return y.index_add(0, g.index, delta);
}

// `y` with rows `index` replaced by `rows`. Without autograd the rows are written in place: a batch
// mixing many tasks then costs one pass over each task's rows, not a copy of the batch per task.
torch::Tensor scatter_rows(torch::Tensor y, const torch::Tensor& index, const torch::Tensor& rows) {
  if (without_autograd()) return y.index_copy_(0, index, rows);
  return y.index_copy(0, index, rows);
}

template <typename M>
AdapterIndex index_entries(const std::vector<SiteEntry<M>>& entries) {
  AdapterIndex index;
  for (size_t i = 0; i < entries.size(); ++i) index[entries[i].adapter].push_back(i);
  return index;
}

// Routed forwards visit the adapters that have rows (a handful per batch), not every adapter attached
// (a server may hold thousands): the routing's adapters that have entries here, with those entries
// in attachment order.
template <typename M>
std::vector<std::pair<std::string, std::vector<const SiteEntry<M>*>>> routed_groups(
    const std::vector<SiteEntry<M>>& entries, const AdapterIndex& index, const RowRouting& routing) {
  std::vector<std::pair<std::string, std::vector<const SiteEntry<M>*>>> out;
  if (entries.empty()) return out;
  for (const std::string& adapter : routing.adapters()) {
    auto it = index.find(adapter);
    if (it == index.end()) continue;
    std::vector<const SiteEntry<M>*> mine;
    for (size_t i : it->second) mine.push_back(&entries[i]);
    out.emplace_back(adapter, std::move(mine));
  }
  return out;
}

}  // namespace

const char* site_role_name(SiteRole role) {
  switch (role) {
    case SiteRole::Query: return "query";
    case SiteRole::Key: return "key";
    case SiteRole::Value: return "value";
    case SiteRole::QueryKeyValue: return "query_key_value";
    case SiteRole::AttentionOutput: return "attention_output";
    case SiteRole::FfnUp: return "ffn_up";
    case SiteRole::FfnGate: return "ffn_gate";
    case SiteRole::FfnDown: return "ffn_down";
    case SiteRole::AfterAttention: return "after_attention";
    case SiteRole::AfterFfn: return "after_ffn";
    case SiteRole::AttentionKV: return "attention_kv";
    case SiteRole::Pooler: return "pooler";
    case SiteRole::Head: return "head";
    case SiteRole::Other: return "other";
  }
  return "other";
}

std::string site_child_name(const std::string& adapter, const std::string& type) {
  return adapter == "default" ? type : adapter + "_" + type;
}

// ---- linear ----------------------------------------------------------------------------------

LinearSite::LinearSite(SiteInfo info, int64_t in_features, int64_t out_features, bool with_bias, bool fan_in_fan_out)
    : info_(std::move(info)), in_features_(in_features), out_features_(out_features), fan_in_fan_out_(fan_in_fan_out) {
  weight = register_parameter("weight", fan_in_fan_out ? torch::empty({in_features, out_features})
                                                       : torch::empty({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor LinearSite::base(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const {
  return torch::nn::functional::linear(x, fan_in_fan_out_ ? w.t() : w, b);
}

// The entries' combined effect on x, as one task: weight/bias/input transforms, the matmul, then the
// output transforms. `shared` (optional) is base(x) already computed, used when nothing changes it.
template <typename Entries>
static torch::Tensor compose(const LinearSite& site, const Entries& entries, const torch::Tensor& x,
                             const torch::Tensor& shared,
                             const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&,
                                                               const torch::Tensor&)>& base) {
  bool changes = false;
  for (auto& e : entries) changes |= e->module->changes_weight_or_input();
  torch::Tensor y;
  if (changes || !shared.defined()) {
    torch::Tensor w = site.weight, b = site.bias, in = x;
    for (auto& e : entries) {
      w = e->module->effective_weight(w);
      if (b.defined()) b = e->module->effective_bias(b);
      in = e->module->transform_input(in);
    }
    y = base(in, w, b);
  } else {
    y = shared;
  }
  for (auto& e : entries) y = e->module->transform_output(x, y);
  return y;
}

torch::Tensor LinearSite::forward(const torch::Tensor& x, RowRouting* routing) {
  if (methods_.empty()) return base(x, weight, bias);
  auto base_fn = [this](const torch::Tensor& in, const torch::Tensor& w, const torch::Tensor& b) { return base(in, w, b); };
  if (!routing || !routing->active()) {
    std::vector<const SiteEntry<LinearMethod>*> all;
    for (auto& e : methods_) all.push_back(&e);
    return compose(*this, all, x, {}, base_fn);
  }
  // Rows routed to an adapter get its computation; the others keep the base output.
  torch::Tensor y = base(x, weight, bias);
  auto groups = routed_groups(methods_, index_, *routing);
  // Few rows (decoding, small batches) under several low-rank adapters: one gathered product for all.
  if (groups.size() > 1 && x.size(0) <= kGatheredRowsLimit) y = apply_low_rank_gathered(this, groups, x, std::move(y), *routing);
  for (auto& [adapter, entries] : groups) {
    if (entries.empty()) continue;  // applied above
    const torch::Tensor& index = routing->index(adapter, x.device());
    if (!index.defined()) continue;
    if (index.size(0) == x.size(0)) {  // every row: no gathering
      y = compose(*this, entries, x, y, base_fn);
      continue;
    }
    y = scatter_rows(y, index, compose(*this, entries, x.index_select(0, index), y.index_select(0, index), base_fn));
  }
  return y;
}

void LinearSite::attach(const std::string& adapter, const std::string& type, std::shared_ptr<LinearMethod> method) {
  const std::string name = site_child_name(adapter, type);
  check_new_name(methods_, name, path());
  register_module(name, method);
  methods_.push_back({adapter, name, std::move(method)});
  index_[adapter].push_back(methods_.size() - 1);
}

void LinearSite::detach(const std::string& adapter, const std::string& type) {
  const std::string name = site_child_name(adapter, type);
  erase_entry(methods_, name, path());
  index_ = index_entries(methods_);
  unregister_module(name);
}

// ---- sublayer --------------------------------------------------------------------------------

torch::Tensor SublayerSite::forward(const torch::Tensor& x, torch::Tensor h, RowRouting* routing) {
  if (!routing || !routing->active()) {
    for (auto& e : methods_) h = e.module->apply(x, h);
    return h;
  }
  for (auto& [adapter, entries] : routed_groups(methods_, index_, *routing)) {
    const torch::Tensor& index = routing->index(adapter, x.device());
    if (!index.defined()) continue;
    if (index.size(0) == x.size(0)) {  // every row: no gathering
      for (auto* e : entries) h = e->module->apply(x, h);
      continue;
    }
    const torch::Tensor xs = x.index_select(0, index);
    torch::Tensor hs = h.index_select(0, index);
    for (auto* e : entries) hs = e->module->apply(xs, hs);
    h = scatter_rows(h, index, hs);
  }
  return h;
}

void SublayerSite::attach(const std::string& adapter, const std::string& type, std::shared_ptr<SublayerMethod> method) {
  const std::string name = site_child_name(adapter, type);
  check_new_name(methods_, name, path());
  register_module(name, method);
  methods_.push_back({adapter, name, std::move(method)});
  index_[adapter].push_back(methods_.size() - 1);
}

void SublayerSite::detach(const std::string& adapter, const std::string& type) {
  const std::string name = site_child_name(adapter, type);
  erase_entry(methods_, name, path());
  index_ = index_entries(methods_);
  unregister_module(name);
}

// ---- attention keys/values -------------------------------------------------------------------

void AttentionKVSite::forward(AttentionKV& kv, RowRouting* routing) {
  if (methods_.empty()) return;
  // Methods always see a mask; the model leaves it undefined when nothing is masked.
  if (!kv.mask.defined())
    kv.mask = torch::zeros({kv.key.size(0), 1, 1, kv.key.size(2)}, kv.key.options());
  if (!routing || !routing->active()) {
    for (auto& e : methods_) e.module->apply(info_.layer, kv);
    return;
  }
  for (auto& [adapter, entries] : routed_groups(methods_, index_, *routing)) for (auto* entry : entries) {
    const SiteEntry<AttentionKVMethod>& e = *entry;
    const torch::Tensor& rows = routing->batch_rows(e.adapter, kv.key.device());
    if (!rows.defined()) continue;
    const int64_t before = kv.key.size(2);
    e.module->apply(info_.layer, kv);
    const int64_t added = kv.key.size(2) - before;
    if (added == 0) continue;
    // Rows of other tasks must not see this task's prepended tokens.
    torch::Tensor hidden = torch::full({kv.key.size(0)}, std::numeric_limits<float>::lowest(), kv.mask.options());
    hidden.index_fill_(0, rows, 0);
    kv.mask = kv.mask.clone();
    kv.mask.narrow(3, 0, added).add_(hidden.view({-1, 1, 1, 1}));
  }
}

void AttentionKVSite::attach(const std::string& adapter, const std::string& type,
                             std::shared_ptr<AttentionKVMethod> method) {
  const std::string name = site_child_name(adapter, type);
  check_new_name(methods_, name, path());
  methods_.push_back({adapter, name, std::move(method)});
  index_[adapter].push_back(methods_.size() - 1);
}

void AttentionKVSite::detach(const std::string& adapter, const std::string& type) {
  erase_entry(methods_, site_child_name(adapter, type), path());
  index_ = index_entries(methods_);
}

int64_t AttentionKVSite::virtual_tokens() const {
  int64_t n = 0;
  for (auto& e : methods_) n += e.module->virtual_tokens();
  return n;
}

std::vector<int64_t> AttentionKVSite::virtual_tokens_per_row(const RowRouting& routing, int64_t batch) const {
  std::vector<int64_t> out(static_cast<size_t>(batch), 0);
  for (auto& e : methods_)
    for (int64_t row : routing.rows(e.adapter)) {
      if (row < 0 || row >= batch) fail("{}: adapter \"{}\" routed to row {} of a batch of {}", path(), e.adapter, row, batch);
      out[static_cast<size_t>(row)] += e.module->virtual_tokens();
    }
  return out;
}

}  // namespace peft
