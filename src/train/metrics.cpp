#include "peft/train/metrics.h"

#include <cmath>
#include <numeric>

#include "peft/error.h"

namespace peft::train {
namespace {

void check_sizes(size_t a, size_t b) {
  if (a != b) fail("metrics: {} predictions for {} labels", a, b);
  if (a == 0) fail("metrics: no examples");
}

std::vector<int64_t> as_ids(const std::vector<double>& v) {
  std::vector<int64_t> out;
  for (double x : v) out.push_back(static_cast<int64_t>(std::llround(x)));
  return out;
}

}  // namespace

double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold) {
  check_sizes(predicted.size(), gold.size());
  size_t right = 0;
  for (size_t i = 0; i < gold.size(); ++i) right += predicted[i] == gold[i];
  return double(right) / double(gold.size());
}

double f1_binary(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold, int64_t positive) {
  check_sizes(predicted.size(), gold.size());
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    const bool p = predicted[i] == positive, g = gold[i] == positive;
    tp += p && g;
    fp += p && !g;
    fn += !p && g;
  }
  return tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
}

double matthews_correlation(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold) {
  check_sizes(predicted.size(), gold.size());
  // Gorodkin's R_K from the confusion matrix: (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)).
  std::map<int64_t, double> pred_count, true_count;
  double correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    ++pred_count[predicted[i]];
    ++true_count[gold[i]];
    correct += predicted[i] == gold[i];
  }
  const double s = double(gold.size());
  double pt = 0, pp = 0, tt = 0;
  for (auto& [k, p] : pred_count) {
    pp += p * p;
    auto it = true_count.find(k);
    if (it != true_count.end()) pt += p * it->second;
  }
  for (auto& [k, t] : true_count) tt += t * t;
  const double denom = std::sqrt((s * s - pp) * (s * s - tt));
  return denom == 0 ? 0.0 : (correct * s - pt) / denom;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x.size(), y.size());
  const double n = double(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx == 0 || syy == 0 ? 0.0 : sxy / std::sqrt(sxx * syy);
}

std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = (double(i) + double(j)) / 2.0 + 1.0;  // average of 1-based ranks i+1 .. j+1
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x.size(), y.size());
  return pearson(average_ranks(x), average_ranks(y));
}

nlohmann::json compute_metrics(const std::vector<std::string>& names, const std::vector<double>& predicted,
                               const std::vector<double>& gold) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& name : names) {
    if (name == "accuracy") out[name] = accuracy(as_ids(predicted), as_ids(gold));
    else if (name == "f1") out[name] = f1_binary(as_ids(predicted), as_ids(gold));
    else if (name == "matthews_correlation") out[name] = matthews_correlation(as_ids(predicted), as_ids(gold));
    else if (name == "pearson") out[name] = pearson(predicted, gold);
    else if (name == "spearmanr") out[name] = spearman(predicted, gold);
    else fail("unknown metric '{}' (accuracy, f1, matthews_correlation, pearson, spearmanr)", name);
  }
  return out;
}

double main_metric(const nlohmann::json& metrics, const std::vector<std::string>& names) {
  if (names.empty()) fail("main_metric: no metric names");
  double sum = 0;
  // Higher is better for the main metric: losses and perplexities count negated.
  for (const auto& n : names) sum += (n == "loss" || n == "perplexity" ? -1.0 : 1.0) * metrics.at(n).get<double>();
  return sum / double(names.size());
}

}  // namespace peft::train
