#include "metrics.h"

#include <fmt/format.h>

namespace peft::serve {
namespace {

const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

std::string join_labels(const std::string& labels, const std::string& more) {
  if (labels.empty()) return more;
  return labels + "," + more;
}

}  // namespace

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& labels) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? fmt::format("{:g}", bounds_[i]) : "+Inf";
    out += fmt::format("{}_bucket{{{}}} {}\n", name, join_labels(labels, fmt::format("le=\"{}\"", le)), cumulative);
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {:g}\n{}_count{} {}\n", name, braces, sum_, name, braces, count_);
}

Metrics::Metrics() : batch_rows_(kBatchBounds) {}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
  latency_.try_emplace(endpoint, kLatencyBounds).first->second.observe(seconds);
}

void Metrics::batch(size_t rows) {
  std::lock_guard lock(mutex_);
  batch_rows_.observe(static_cast<double>(rows));
}

void Metrics::tokens(int64_t prompt, int64_t completion) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
}

std::string Metrics::prometheus(size_t queue_depth, size_t tasks) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out += "# HELP peft_requests_total HTTP requests by endpoint and status.\n# TYPE peft_requests_total counter\n";
  for (auto& [key, n] : requests_)
    out += fmt::format("peft_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  out += "# HELP peft_request_seconds Request latency by endpoint.\n# TYPE peft_request_seconds histogram\n";
  for (auto& [endpoint, h] : latency_) h.write(out, "peft_request_seconds", fmt::format("endpoint=\"{}\"", endpoint));
  out += "# HELP peft_batch_rows Rows per model batch.\n# TYPE peft_batch_rows histogram\n";
  batch_rows_.write(out, "peft_batch_rows", "");
  out += fmt::format("# HELP peft_queue_depth Rows waiting for a batch.\n# TYPE peft_queue_depth gauge\npeft_queue_depth {}\n",
                     queue_depth);
  out += fmt::format("# HELP peft_tasks_loaded Tasks in memory.\n# TYPE peft_tasks_loaded gauge\npeft_tasks_loaded {}\n", tasks);
  out += fmt::format("# HELP peft_prompt_tokens_total Input tokens processed.\n# TYPE peft_prompt_tokens_total counter\n"
                     "peft_prompt_tokens_total {}\n", prompt_tokens_);
  out += fmt::format("# HELP peft_completion_tokens_total Tokens generated.\n# TYPE peft_completion_tokens_total counter\n"
                     "peft_completion_tokens_total {}\n", completion_tokens_);
  return out;
}

}  // namespace peft::serve
