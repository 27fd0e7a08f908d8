// Schedules and the optimizer's parameter groups.
#include <gtest/gtest.h>

#include <sstream>

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

namespace {

// Two tensors in two groups (decay on one, different rates), optimised by Opt.
template <typename Opt>
struct TwoGroups {
  torch::Tensor a, b;
  std::unique_ptr<Opt> opt;
  TwoGroups(const torch::Tensor& init_a, const torch::Tensor& init_b)
      : a(init_a.clone().requires_grad_()), b(init_b.clone().requires_grad_()) {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{a}, std::make_unique<torch::optim::AdamWOptions>(
                                                           torch::optim::AdamWOptions(0.05).weight_decay(0.1)));
    groups.emplace_back(std::vector<torch::Tensor>{b}, std::make_unique<torch::optim::AdamWOptions>(
                                                           torch::optim::AdamWOptions(0.2).weight_decay(0)));
    opt = std::make_unique<Opt>(groups, torch::optim::AdamWOptions(0.05));
  }
  void step(const torch::Tensor& target, bool with_b) {
    opt->zero_grad();
    auto loss = (a * a.sum() - target).pow(2).mean();
    if (with_b) loss = loss + (b * b).sum() * a.mean();
    loss.backward();
    opt->step();
  }
};

}  // namespace

// The fused update is LibTorch's AdamW: the same trajectory (to float rounding) over several steps with
// decay, two rates and a tensor whose gradient is missing in one step; and the same saved state.
TEST(TrainOptimizer, FusedAdamWMatchesLibTorchAdamW) {
  torch::manual_seed(3);
  const auto init_a = torch::randn({7, 5}), init_b = torch::randn({5});
  TwoGroups<torch::optim::AdamW> reference(init_a, init_b);
  TwoGroups<FusedAdamW> fused(init_a, init_b);
  for (int step = 0; step < 6; ++step) {
    const auto target = torch::randn({7, 5});
    reference.step(target, step != 2);
    fused.step(target, step != 2);
    ASSERT_TRUE(torch::allclose(reference.a, fused.a, 1e-5, 1e-6)) << "step " << step;
    ASSERT_TRUE(torch::allclose(reference.b, fused.b, 1e-5, 1e-6)) << "step " << step;
    ASSERT_FALSE(torch::equal(fused.a, init_a));
  }
  // What the fused optimizer saves, LibTorch's AdamW loads.
  torch::serialize::OutputArchive out;
  fused.opt->save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  std::istringstream stream(bytes.str());
  torch::serialize::InputArchive in;
  in.load_from(stream);
  TwoGroups<torch::optim::AdamW> restored(init_a, init_b);
  restored.opt->load(in);
  const auto& saved = static_cast<torch::optim::AdamWParamState&>(*fused.opt->state().at(fused.b.unsafeGetTensorImpl()));
  const auto& loaded = static_cast<torch::optim::AdamWParamState&>(*restored.opt->state().at(restored.b.unsafeGetTensorImpl()));
  EXPECT_EQ(loaded.step(), 5);  // b skipped one step
  EXPECT_TRUE(torch::equal(saved.exp_avg_sq(), loaded.exp_avg_sq()));
}
