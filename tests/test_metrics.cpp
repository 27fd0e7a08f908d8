// Metrics against hand-computed values (checked with scikit-learn / scipy formulas).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/train/metrics.h"

using namespace peft::train;

TEST(Metrics, AccuracyF1Matthews) {
  const std::vector<int64_t> pred{1, 0, 1, 1}, gold{1, 0, 0, 1};
  EXPECT_DOUBLE_EQ(accuracy(pred, gold), 0.75);
  EXPECT_DOUBLE_EQ(f1_binary(pred, gold), 0.8);  // tp 2, fp 1, fn 0: 4 / 5
  // tp 2, tn 1, fp 1, fn 0: (2*1 - 1*0) / sqrt(3*2*1*2)
  EXPECT_NEAR(matthews_correlation(pred, gold), 2.0 / std::sqrt(12.0), 1e-12);
  // Multi-class: c 3, s 4, sum p*t 5, sum p^2 6, sum t^2 6 -> (12 - 5) / sqrt(10 * 10)
  EXPECT_NEAR(matthews_correlation({0, 1, 2, 2}, {0, 1, 1, 2}), 0.7, 1e-12);
  // Undefined cases are 0, as in scikit-learn.
  EXPECT_EQ(matthews_correlation({1, 1, 1}, {0, 1, 1}), 0.0);
  EXPECT_EQ(f1_binary({0, 0}, {0, 0}), 0.0);
  EXPECT_THROW(accuracy({1}, {1, 0}), peft::Error);
}

TEST(Metrics, PearsonSpearmanWithTies) {
  // dx = (-1.5 -.5 .5 1.5), dy = (-3 -1 0 4): 11 / sqrt(5 * 26)
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 5, 9}), 11.0 / std::sqrt(130.0), 1e-12);
  EXPECT_EQ(average_ranks({10, 20, 20, 20, 5}), (std::vector<double>{2, 4, 4, 4, 1}));
  // ranks (1 2.5 2.5 4) vs (1 3 2 4): 4.5 / sqrt(4.5 * 5) = 0.9486832980505138 (scipy.stats.spearmanr)
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 3, 2, 4}), 0.9486832980505138, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3}, {30, 20, 10}), -1.0, 1e-12);
  EXPECT_EQ(pearson({1, 1, 1}, {1, 2, 3}), 0.0);
}

TEST(Metrics, TaskMetricsAndMainMetric) {
  auto m = compute_metrics({"accuracy", "f1"}, {1, 0, 1, 1}, {1, 0, 0, 1});
  EXPECT_DOUBLE_EQ(m["accuracy"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(m["f1"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(main_metric(m, {"accuracy", "f1"}), 0.775);
  EXPECT_THROW(compute_metrics({"bleu"}, {1}, {1}), peft::Error);
}
