#pragma once
// Counters and histograms of `peft serve`, written in Prometheus' text format (internal to src/serve).
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace peft::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double value);
  // Lines `name_bucket{labels,le="..."} n`, `name_sum`, `name_count`.
  void write(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void request(const std::string& endpoint, int status, double seconds);
  void batch(size_t rows);
  void tokens(int64_t prompt, int64_t completion);
  std::string prometheus(size_t queue_depth, size_t tasks) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram batch_rows_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
};

}  // namespace peft::serve
