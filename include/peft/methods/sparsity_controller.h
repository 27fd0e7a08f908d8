#pragma once
// Target-density control of diff pruning's L0 stage. With the authors' fixed weight (1.25e-7 per entry)
// the gates barely move in a few hundred steps, and the projection to the budget then discards a dense
// diff. The controller instead treats "open fraction = target" as a constraint with a Lagrange
// multiplier lambda on the expected L0, kept in log space so that it can grow by orders of magnitude in
// tens of steps:
//   target(k) = target_sparsity ^ clamp((k/total - ramp_start) / (ramp_end - ramp_start), 0, 1)
//               (1 while w grows from zero, then geometric down to the target, then held)
//   e = log(open fraction / target(k)),  v = this step's fall of log(open fraction)
//   log_lambda -= rate * min(-e, 1)        if e < 0                          (below: release)
//   log_lambda -= rate * min(10 v - e, 1)  if 10 v > e and v > target's fall (about to pass it: brake)
//   log_lambda += rate * min(e, 1)         if v < max(target's fall, e / 20) (too slow: push)
// The open fraction is the share of entries whose deterministic gate is non-zero: what the
// projection keeps without loss (the expected density also counts the tail of closed gates).
// Above the target the multiplier rises until the penalty outweighs the task gradient on every gate
// that does not earn its keep; below it, it falls and lets useful gates reopen. The gates answer late
// (AdamW moves log alpha by about gate_lr per step, from its open start), so the multiplier is held
// while the density already falls fast enough: rising on until the density meets the target would
// overshoot and close every gate, and closed gates get no gradient to reopen.
// The state (log lambda, last open fraction) is a tensor so that checkpoints save it and a resume is exact.
#include <cstdint>

#include <torch/types.h>

namespace peft {

struct SparsityControllerConfig {
  double target = 0.005;         // final open fraction
  double initial_lambda = 1.25e-7;
  double ramp_start = 0.1, ramp_end = 0.6;  // the target falls between these fractions of the stage
  double rate = 0.1;             // largest change of log lambda per step
  void validate() const;         // errors name diff pruning's keys, the one user of the controller
};

class SparsityController {
 public:
  explicit SparsityController(SparsityControllerConfig config);
  // The density target after `step` of `total_steps` optimizer steps.
  double target(int64_t step, int64_t total_steps) const;
  // Moves the multiplier toward the target; `density` is the open fraction after the step just taken.
  void update(double density, int64_t step, int64_t total_steps);
  double lambda() const;
  // {log lambda, last open fraction}, double (not trained by the optimizer; checkpointed with the trained tensors).
  torch::Tensor& state() { return state_; }

 private:
  SparsityControllerConfig config_;
  torch::Tensor state_;
};

}  // namespace peft
