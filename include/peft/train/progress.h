#pragma once
// Text for progress reports (the CLI decides where and how often to print them).
#include <string>

#include "peft/train/trainer.h"

namespace peft::train {

// "step 120/500 | loss 0.4123 | lr 4.10e-04 | 3.21 it/s | ETA 1m58s"
std::string progress_text(const StepInfo& info);
// The same with a bar in front, fitted to `width` columns, for a terminal line redrawn with '\r'.
std::string progress_bar(const StepInfo& info, size_t width = 100);
std::string format_duration(double seconds);  // "45s", "3m07s", "1h02m"

}  // namespace peft::train
