#include "peft/methods/sparsity_controller.h"

#include <algorithm>
#include <cmath>

#include "peft/error.h"

namespace peft {

namespace {
// About how many steps AdamW's first moment (beta1 0.9) keeps the gates moving after the push stops.
constexpr double kHorizonSteps = 10;
// Above the target, a density that would close the gap within this many steps is left to fall on.
constexpr double kCatchUpSteps = 20;
}  // namespace

SparsityController::SparsityController(SparsityControllerConfig config) : config_(config) {
  if (!(config_.target > 0 && config_.target <= 1)) fail("sparsity controller: target must be in (0, 1]");
  if (!(config_.initial_lambda > 0)) fail("diff_pruning: l0_lambda must be > 0 with sparsity_control \"target\"");
  if (!(config_.ramp_start >= 0 && config_.ramp_start < config_.ramp_end && config_.ramp_end <= 1))
    fail("diff_pruning: need 0 <= ramp_start < ramp_end <= 1 (got {}, {})", config_.ramp_start, config_.ramp_end);
  if (!(config_.rate > 0)) fail("diff_pruning: controller_rate must be > 0 (got {})", config_.rate);
  state_ = torch::tensor({std::log(config_.initial_lambda), 1.0}, torch::kDouble);
}

double SparsityController::target(int64_t step, int64_t total_steps) const {
  const double start = config_.ramp_start * double(total_steps);
  const double length = std::max(1.0, (config_.ramp_end - config_.ramp_start) * double(total_steps));
  const double progress = std::clamp((double(step) - start) / length, 0.0, 1.0);
  return std::pow(config_.target, progress);
}

void SparsityController::update(double density, int64_t step, int64_t total_steps) {
  density = std::max(density, 1e-30);
  auto s = state_.accessor<double, 1>();
  const double error = std::log(density / target(step, total_steps));
  const double fall = std::log(density / s[1]);  // this step's change of log density
  const double target_fall = std::log(target(step, total_steps) / target(step - 1, total_steps));
  const double speed = -fall;                           // > 0 while the density falls
  const double overshoot = speed * kHorizonSteps - error;  // > 0: at this speed the target is passed soon
  if (error < 0)
    s[0] -= config_.rate * std::min(-error, 1.0);
  else if (overshoot > 0 && speed > -target_fall)
    s[0] -= config_.rate * std::min(overshoot, 1.0);  // brake: the gates' momentum carries them on
  else if (speed < std::max(-target_fall, error / kCatchUpSteps))  // too slow to meet the target soon
    s[0] += config_.rate * std::min(error, 1.0);
  s[1] = density;
}

double SparsityController::lambda() const { return std::exp(state_[0].item<double>()); }

}  // namespace peft
