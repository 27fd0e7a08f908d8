#pragma once
// Evaluation metrics, computed as scikit-learn / scipy do (the GLUE reference implementation),
// and each GLUE task's official metrics. Results are JSON objects {"accuracy": 0.91, ...}.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::train {

double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold);
// F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP. 0 when undefined.
double f1_binary(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold, int64_t positive = 1);
// Matthews correlation (multi-class form; equals the binary phi coefficient). 0 when undefined.
double matthews_correlation(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold);
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Pearson correlation of the ranks; tied values share the average of their ranks.
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// 1-based ranks with ties averaged.
std::vector<double> average_ranks(const std::vector<double>& values);

// The metrics named in `names` ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")
// for predictions (class ids, or scores for regression) against gold labels.
nlohmann::json compute_metrics(const std::vector<std::string>& names, const std::vector<double>& predicted,
                               const std::vector<double>& gold);

// The number that picks the best checkpoint: the mean of the task's metrics (HF run_glue's
// "combined_score" when there are several).
double main_metric(const nlohmann::json& metrics, const std::vector<std::string>& names);

}  // namespace peft::train
