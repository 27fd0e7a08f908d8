#include "peft/methods/diff_pruning.h"

#include <cmath>
#include <limits>
#include <regex>

#include <nlohmann/json.hpp>

#include "methods/json_config.h"
#include "peft/error.h"
#include "peft/methods/model_params.h"
#include "peft/methods/random.h"
#include "peft/models/decoder.h"

namespace peft {

void DiffPruningConfig::validate() const {
  if (!(target_sparsity > 0 && target_sparsity <= 1))
    fail("diff_pruning: target_sparsity must be in (0, 1] (got {})", target_sparsity);
  if (group != "tensor" && group != "row") fail("diff_pruning: group must be \"tensor\" or \"row\" (got \"{}\")", group);
  if (value_dtype != "F32" && value_dtype != "F16" && value_dtype != "BF16")
    fail("diff_pruning: value_dtype must be F32, F16 or BF16 (got \"{}\")", value_dtype);
  if (!(l0_lambda >= 0)) fail("diff_pruning: l0_lambda must be >= 0 (got {})", l0_lambda);
  if (sparsity_control != "target" && sparsity_control != "fixed")
    fail("diff_pruning: sparsity_control must be \"target\" or \"fixed\" (got \"{}\")", sparsity_control);
  if (sparsity_control == "target") controller().validate();
  if (!(mask_lr >= 0)) fail("diff_pruning: mask_lr must be >= 0 (got {})", mask_lr);
  if (!(gate_lr > 0)) fail("diff_pruning: gate_lr must be > 0 (got {})", gate_lr);
  if (l0_epochs < 0 || mask_epochs < 0) fail("diff_pruning: l0_epochs and mask_epochs must be >= 0");
  gate().validate();
  try {
    std::regex check(target_parameters);
  } catch (const std::regex_error& e) {
    fail("diff_pruning: target_parameters is not a valid regex ({})", e.what());
  }
}

DiffPruningConfig DiffPruningConfig::from_json(const nlohmann::json& j) {
  DiffPruningConfig c;
  read_key(j, "target_parameters", c.target_parameters);
  read_key(j, "target_sparsity", c.target_sparsity);
  read_key(j, "structured", c.structured);
  read_key(j, "group", c.group);
  read_key(j, "sparsity_control", c.sparsity_control);
  read_key(j, "l0_lambda", c.l0_lambda);
  read_key(j, "ramp_start", c.ramp_start);
  read_key(j, "ramp_end", c.ramp_end);
  read_key(j, "controller_rate", c.controller_rate);
  read_key(j, "gate_lr", c.gate_lr);
  read_key(j, "init_log_alpha", c.init_log_alpha);
  read_key(j, "beta", c.beta);
  read_key(j, "gate_l", c.gate_l);
  read_key(j, "gate_r", c.gate_r);
  read_key(j, "l0_epochs", c.l0_epochs);
  read_key(j, "mask_epochs", c.mask_epochs);
  read_key(j, "mask_lr", c.mask_lr);
  read_key(j, "value_dtype", c.value_dtype);
  c.validate();
  return c;
}

nlohmann::json DiffPruningConfig::to_json() const {
  return {{"target_parameters", target_parameters}, {"target_sparsity", target_sparsity}, {"structured", structured},
          {"group", group}, {"sparsity_control", sparsity_control}, {"l0_lambda", l0_lambda},
          {"ramp_start", ramp_start}, {"ramp_end", ramp_end}, {"controller_rate", controller_rate}, {"gate_lr", gate_lr},
          {"init_log_alpha", init_log_alpha}, {"beta", beta}, {"gate_l", gate_l}, {"gate_r", gate_r},
          {"l0_epochs", l0_epochs}, {"mask_epochs", mask_epochs}, {"mask_lr", mask_lr}, {"value_dtype", value_dtype}};
}

nlohmann::json ProjectionReport::to_json() const {
  return {{"numel", numel}, {"target", target}, {"nnz", nnz}, {"density", double(nnz) / double(numel)},
          {"threshold", threshold}, {"ties_kept", ties_kept}};
}

namespace {

// The member each parameter's module reads in forward(), by HF parameter name.
std::map<std::string, torch::Tensor*> forward_slots(Model& model) {
  std::map<std::string, torch::Tensor*> out;
  for (auto& item : model.named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    torch::nn::Module* m = item.value().get();
    if (auto* s = dynamic_cast<LinearSite*>(m)) {
      out[prefix + "weight"] = &s->weight;
      if (s->bias.defined()) out[prefix + "bias"] = &s->bias;
    } else if (auto* e = dynamic_cast<torch::nn::EmbeddingImpl*>(m)) {
      out[prefix + "weight"] = &e->weight;
    } else if (auto* r = dynamic_cast<RMSNormImpl*>(m)) {
      out[prefix + "weight"] = &r->weight;
    } else if (auto* n = dynamic_cast<torch::nn::LayerNormImpl*>(m)) {
      if (n->weight.defined()) out[prefix + "weight"] = &n->weight;
      if (n->bias.defined()) out[prefix + "bias"] = &n->bias;
    }
  }
  return out;
}

}  // namespace

DiffPruning::DiffPruning(DiffPruningConfig config) : config_(std::move(config)), gate_(config_.gate()) {
  config_.validate();
}

nlohmann::json DiffPruning::config() const { return config_.to_json(); }

void DiffPruning::attach(Model& model) {
  pruned_.clear();
  stage_ = Stage::Gates;
  penalty_ = torch::Tensor();
  base_checksum_.reset();
  const auto slots = forward_slots(model);
  const std::regex select(config_.target_parameters.empty() ? ".*" : config_.target_parameters);
  for (auto& [name, p] : base_named_parameters(model)) {
    if (is_head_parameter(model, name) || !std::regex_match(name, select)) continue;
    auto slot = slots.find(name);
    if (slot == slots.end()) fail("diff_pruning: parameter {} is not in a linear, embedding or LayerNorm module", name);
    Pruned e{name, p, slot->second, {}, {}, {}, {}, {}};
    e.w = torch::zeros_like(p).set_requires_grad(true);
    e.log_alpha = torch::full_like(p, config_.init_log_alpha).set_requires_grad(true);
    if (config_.structured) {
      if (config_.group == "row") {
        e.group_shape.assign(static_cast<size_t>(p.dim()), 1);
        e.group_shape[0] = p.size(0);
      }
      e.group_log_alpha = torch::full(e.group_shape, config_.init_log_alpha, p.options()).set_requires_grad(true);
    }
    pruned_.push_back(std::move(e));
  }
  if (pruned_.empty()) fail("diff_pruning: target_parameters \"{}\" matches no base parameter", config_.target_parameters);
}

void DiffPruning::restore_slots() {
  for (auto& e : pruned_) *e.slot = e.base;
}

void DiffPruning::detach(Model&) {
  restore_slots();
  pruned_.clear();
  penalty_ = torch::Tensor();
}

std::vector<MethodTensor> DiffPruning::tensors() {
  std::vector<MethodTensor> out;
  for (auto& e : pruned_) {
    const std::string site = e.name.substr(0, e.name.rfind('.')), key = kModelKeyPrefix + e.name;
    out.push_back({site, key + ".diff", e.w});
    if (stage_ == Stage::Gates) {
      out.push_back({site, key + ".log_alpha", e.log_alpha});
      if (e.group_log_alpha.defined()) out.push_back({site, key + ".group_log_alpha", e.group_log_alpha});
    }
  }
  return out;
}

void DiffPruning::before_forward(Model& model) {
  if (stage_ == Stage::Mask) {
    for (auto& e : pruned_) *e.slot = torch::addcmul(e.base, e.mask, e.w);
    return;
  }
  if (!model.is_training()) {  // deterministic gates
    for (auto& e : pruned_) *e.slot = e.base + gate_eval(e) * e.w;
    return;
  }
  // One draw from the methods' generator per forward: the noise follows --seed, survives a resume and
  // is the same on every data-parallel rank.
  const auto seed = static_cast<uint64_t>(
      torch::randint(std::numeric_limits<int64_t>::max(), {1}, method_generator(), torch::kLong).item<int64_t>());
  torch::Tensor total;
  for (size_t i = 0; i < pruned_.size(); ++i) {
    auto& e = pruned_[i];
    torch::Tensor w = e.w, group_l0;
    if (e.group_log_alpha.defined()) {  // entry gate times group gate: z_tau * z_g * w
      auto u = torch::rand(e.group_log_alpha.sizes(), method_generator(), e.group_log_alpha.options()).clamp(1e-6, 1 - 1e-6);
      w = hard_concrete_sample(e.group_log_alpha, u, gate_) * w;
      group_l0 = hard_concrete_l0(e.group_log_alpha, gate_);
    }
    auto [eff, l0] = gated_diff(e.base, w, e.log_alpha, seed + 0x9E3779B97F4A7C15ULL * (i + 1), gate_);
    *e.slot = eff;
    if (group_l0.defined())  // sum over entries of P(z_tau != 0) P(z_g != 0)
      l0 = config_.group == "tensor" ? l0 * group_l0 : (hard_concrete_l0(e.log_alpha, gate_) * group_l0).sum();
    total = total.defined() ? total + l0 : l0;
  }
  penalty_ = total;
}

torch::Tensor DiffPruning::penalty() const {
  if (stage_ != Stage::Gates) return torch::zeros({});
  if (!penalty_.defined()) fail("diff_pruning: no training forward yet (penalty() needs one)");
  return penalty_;
}

// Per entry, the deterministic gate (z_eval, times the group's) and P(z != 0); the mask in stage 2.
torch::Tensor DiffPruning::gate_eval(const Pruned& e) const {
  if (stage_ == Stage::Mask) return e.mask;
  auto z = hard_concrete_eval(e.log_alpha, gate_);
  return e.group_log_alpha.defined() ? z * hard_concrete_eval(e.group_log_alpha, gate_) : z;
}

torch::Tensor DiffPruning::gate_l0(const Pruned& e) const {
  if (stage_ == Stage::Mask) return e.mask;
  auto p = hard_concrete_l0(e.log_alpha, gate_);
  return e.group_log_alpha.defined() ? p * hard_concrete_l0(e.group_log_alpha, gate_) : p;
}

double DiffPruning::expected_l0() {
  torch::NoGradGuard no_grad;
  double n = 0;
  for (auto& e : pruned_) n += gate_l0(e).sum().item<double>();
  return n;
}

int64_t DiffPruning::open_gates() {
  torch::NoGradGuard no_grad;
  int64_t n = 0;
  for (auto& e : pruned_) n += gate_eval(e).count_nonzero().item<int64_t>();
  return n;
}

int64_t DiffPruning::pruned_numel() const {
  int64_t n = 0;
  for (auto& e : pruned_) n += e.base.numel();
  return n;
}

std::vector<torch::Tensor> DiffPruning::deltas() {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (auto& e : pruned_) out.push_back(gate_eval(e) * e.w);
  return out;
}

ProjectionReport DiffPruning::project(double target_sparsity) {
  if (!(target_sparsity > 0 && target_sparsity <= 1))
    fail("diff_pruning: target_sparsity must be in (0, 1] (got {})", target_sparsity);
  if (pruned_.empty()) fail("diff_pruning: project() before attach()");
  torch::NoGradGuard no_grad;
  const auto deltas = this->deltas();
  std::vector<torch::Tensor> flats;
  for (auto& d : deltas) flats.push_back(d.abs().flatten().to(torch::kFloat));
  const torch::Tensor all = torch::cat(flats);
  ProjectionReport r;
  r.numel = all.numel();
  r.target = std::min(r.numel, std::max<int64_t>(1, std::llround(target_sparsity * double(r.numel))));
  // Threshold = the target-th largest |delta|; all larger entries are kept, and of the entries equal
  // to it the first ones in (tensor, flat index) order, so the count is exact and the choice fixed.
  const torch::Tensor threshold = std::get<0>(torch::kthvalue(all, r.numel - r.target + 1));
  torch::Tensor keep = all > threshold;
  const int64_t ties = r.target - keep.sum().item<int64_t>();
  if (ties > 0 && threshold.item<float>() == 0) {
    // Fewer open gates than the budget: the rest goes to the closed entries most likely to open
    // (largest |w| * P(z != 0)) rather than to the first in order.
    std::vector<torch::Tensor> scores;
    for (auto& e : pruned_) scores.push_back((e.w.abs() * gate_l0(e)).flatten().to(torch::kFloat));
    const torch::Tensor score = torch::cat(scores).masked_fill(keep, -1);
    keep.index_fill_(0, std::get<1>(torch::topk(score, ties)), true);
  } else if (ties > 0) {
    auto equal = (all == threshold).nonzero().flatten().slice(0, 0, ties);
    keep.index_fill_(0, equal, true);
  }
  r.threshold = threshold.item<double>();
  r.ties_kept = ties;
  r.nnz = keep.sum().item<int64_t>();
  int64_t offset = 0;
  for (size_t i = 0; i < pruned_.size(); ++i) {
    auto& e = pruned_[i];
    const int64_t n = e.base.numel();
    e.mask = keep.slice(0, offset, offset + n).view(e.base.sizes()).to(e.base.scalar_type());
    offset += n;
    e.w = (deltas[i] * e.mask).detach().set_requires_grad(true);
    e.log_alpha = torch::Tensor();
    e.group_log_alpha = torch::Tensor();
  }
  stage_ = Stage::Mask;
  penalty_ = torch::Tensor();
  return r;
}

SparseDiff DiffPruning::sparse_diff(Model& model, const std::string& base_model) {
  if (stage_ != Stage::Mask) fail("diff_pruning: project() before saving the sparse diff");
  torch::NoGradGuard no_grad;
  SparseDiff d;
  d.base_model = base_model;
  d.value_dtype = config_.value_dtype == "F16" ? torch::kHalf
                  : config_.value_dtype == "BF16" ? torch::kBFloat16 : torch::kFloat;
  std::vector<std::pair<std::string, torch::Tensor>> bases;
  for (auto& e : pruned_) {
    auto idx = e.mask.flatten().nonzero().flatten();
    d.tensors.push_back({e.name, e.base.sizes().vec(), idx.to(torch::kCPU),
                         e.w.detach().flatten().index_select(0, idx).to(torch::kCPU, torch::kFloat)});
    bases.emplace_back(e.name, e.base);
  }
  if (!base_checksum_) base_checksum_ = base_checksum(bases);
  d.base_checksum = *base_checksum_;
  for (auto& [name, p] : base_named_parameters(model))
    if (is_head_parameter(model, name)) d.head.emplace_back(name, p.detach().to(torch::kCPU, torch::kFloat).clone());
  return d;
}

std::shared_ptr<DiffPruning> make_diff_pruning(const DiffPruningConfig& config) {
  return std::make_shared<DiffPruning>(config);
}

}  // namespace peft
