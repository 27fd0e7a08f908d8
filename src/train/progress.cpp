#include "peft/train/progress.h"

#include <cmath>

namespace peft::train {

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string progress_text(const StepInfo& info) {
  const double rate = info.elapsed_s > 0 ? double(info.steps_done_here) / info.elapsed_s : 0.0;
  const std::string eta = rate > 0 ? format_duration(double(info.total_steps - info.step) / rate) : "?";
  return fmt::format("step {}/{} | epoch {} | loss {:.4f} | lr {:.2e} | {:.2f} it/s | ETA {}", info.step,
                     info.total_steps, info.epoch + 1, info.loss, info.lr, rate, eta);
}

std::string progress_bar(const StepInfo& info, size_t width) {
  const std::string text = progress_text(info);
  const size_t bar = width > text.size() + 8 ? std::min<size_t>(30, width - text.size() - 4) : 10;
  const double done = info.total_steps > 0 ? double(info.step) / double(info.total_steps) : 0.0;
  const auto filled = static_cast<size_t>(done * double(bar));
  return "[" + std::string(filled, '#') + std::string(bar - filled, '.') + "] " + text;
}

}  // namespace peft::train
