// Schedules and the optimizer's parameter groups.
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/train/optimizer.h"
#include "peft/train/schedule.h"

using namespace peft::train;

TEST(TrainSchedule, WarmupThenLinearOrCosine) {
  // HF semantics: step = optimizer steps already taken; warmup 2 of 10.
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Linear, 0, 2, 10), 0.0);
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Linear, 1, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Linear, 2, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Linear, 6, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Linear, 10, 2, 10), 0.0);
  EXPECT_NEAR(lr_factor(Schedule::Cosine, 6, 2, 10), 0.5, 1e-12);
  EXPECT_NEAR(lr_factor(Schedule::Cosine, 10, 2, 10), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Constant, 7, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(Schedule::Linear, 3, 0, 10), 0.7);
  EXPECT_THROW(parse_schedule("step"), peft::Error);
}

TEST(TrainOptimizer, GroupsDecayAndRates) {
  auto w = torch::ones({2, 2}).requires_grad_(), b = torch::ones({2}).requires_grad_(),
       ln = torch::ones({2}).requires_grad_(), head = torch::ones({2}).requires_grad_();
  std::vector<NamedTensor> tensors{{"layer.dense.weight", w}, {"layer.dense.bias", b},
                                   {"layer.LayerNorm.weight", ln}, {"classifier.weight", head}};
  auto setup = make_adamw(tensors, 0.1, 0.5, {parse_group_rule("classifier=0.2")});
  ASSERT_EQ(setup.names.size(), 3u);
  EXPECT_EQ(setup.names[0], (std::vector<std::string>{"layer.dense.weight"}));
  EXPECT_EQ(setup.names[1], (std::vector<std::string>{"layer.dense.bias", "layer.LayerNorm.weight"}));
  EXPECT_EQ(setup.base_lrs, (std::vector<double>{0.1, 0.1, 0.2}));

  // Zero gradients: Adam's update is 0, only decoupled decay acts: p *= 1 - lr * wd.
  for (auto& t : tensors) t.tensor.mutable_grad() = torch::zeros_like(t.tensor);
  set_lr(setup, 0.5);  // schedule factor halves every group's rate
  setup.optimizer->step();
  EXPECT_NEAR(w[0][0].item<double>(), 1.0 - 0.05 * 0.5, 1e-7);
  EXPECT_NEAR(b[0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(ln[0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(head[0].item<double>(), 1.0 - 0.1 * 0.5, 1e-7);
  EXPECT_THROW(parse_group_rule("classifier"), peft::Error);
  EXPECT_THROW(parse_group_rule("x=abc"), peft::Error);
}
