#pragma once
// Timing helpers shared by the benchmark programs.
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace peft::bench {

// Wall-clock seconds of one call.
inline double seconds(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of `iters` calls after `warmup` untimed ones.
inline double median_seconds(int iters, const std::function<void()>& step, int warmup = 2) {
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> s;
  for (int i = 0; i < iters; ++i) s.push_back(seconds(step));
  return median(s);
}

}  // namespace peft::bench
