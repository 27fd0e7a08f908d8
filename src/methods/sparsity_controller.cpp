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

void SparsityControllerConfig::validate() const {
  if (!(target > 0 && target <= 1)) fail("diff_pruning: target_sparsity must be in (0, 1] (got {})", target);
  if (!(initial_lambda > 0)) fail("diff_pruning: l0_lambda must be > 0 with sparsity_control \"target\"");
  if (!(ramp_start >= 0 && ramp_start < ramp_end && ramp_end <= 1))
    fail("diff_pruning: need 0 <= ramp_start < ramp_end <= 1 (got {}, {})", ramp_start, ramp_end);
  if (!(rate > 0)) fail("diff_pruning: controller_rate must be > 0 (got {})", rate);
}

SparsityController::SparsityController(SparsityControllerConfig config) : config_(config) {
  config_.validate();
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
  const double speed = std::log(s[1] / density);  // this step's fall of the log open fraction
  const double target_speed = std::log(target(step - 1, total_steps) / target(step, total_steps));
  const double overshoot = speed * kHorizonSteps - error;  // > 0: at this speed the target is passed soon
  if (error < 0)
    s[0] -= config_.rate * std::min(-error, 1.0);
  else if (overshoot > 0 && speed > target_speed)
    s[0] -= config_.rate * std::min(overshoot, 1.0);  // brake: the gates' momentum carries them on
  else if (speed < std::max(target_speed, error / kCatchUpSteps))  // too slow to meet the target soon
    s[0] += config_.rate * std::min(error, 1.0);
  s[1] = density;
}

double SparsityController::lambda() const { return std::exp(state_[0].item<double>()); }

}  // namespace peft
