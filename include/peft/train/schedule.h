#pragma once
// Learning-rate schedules as multipliers of the base rate, with Hugging Face's definitions
// (get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup): `step` counts optimizer
// steps already taken, so the first step of a warmup runs at rate 0.
#include <cstdint>
#include <string>

namespace peft::train {

enum class Schedule { Constant, Linear, Cosine };

Schedule parse_schedule(const std::string& name);  // "constant" | "linear" | "cosine"
std::string schedule_name(Schedule schedule);

double lr_factor(Schedule schedule, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace peft::train
