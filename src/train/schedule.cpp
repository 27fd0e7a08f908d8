#include "peft/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "peft/error.h"

namespace peft::train {

Schedule parse_schedule(const std::string& name) {
  if (name == "constant") return Schedule::Constant;
  if (name == "linear") return Schedule::Linear;
  if (name == "cosine") return Schedule::Cosine;
  fail("unknown learning-rate schedule '{}' (constant, linear, cosine)", name);
}

std::string schedule_name(Schedule schedule) {
  switch (schedule) {
    case Schedule::Constant: return "constant";
    case Schedule::Linear: return "linear";
    case Schedule::Cosine: return "cosine";
  }
  return "?";
}

double lr_factor(Schedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < warmup_steps) return double(step) / double(std::max<int64_t>(1, warmup_steps));
  if (schedule == Schedule::Constant) return 1.0;
  const double progress = double(step - warmup_steps) / double(std::max<int64_t>(1, total_steps - warmup_steps));
  if (schedule == Schedule::Linear) return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace peft::train
