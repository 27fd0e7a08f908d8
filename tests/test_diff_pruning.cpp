// Diff pruning: hard-concrete gates (gradients, exact zeros/ones), the diff parametrisation, exact
// projection, sparse task files (round trip, apply/revert bit-exactly, bad input), the multi-task store.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/methods/diff_pruning.h"
#include "peft/methods/diff_store.h"
#include "peft/methods/hard_concrete.h"
#include "peft/methods/model_params.h"
#include "peft/methods/registry.h"
#include "peft/methods/sparse_diff.h"
#include "peft/methods/sparsity_controller.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using namespace peft;
using ::testing::HasSubstr;

namespace {

// Central differences of scalar f around every entry of x (double precision).
torch::Tensor numeric_grad(const std::function<double()>& f, torch::Tensor x, double eps = 1e-6) {
  torch::NoGradGuard no_grad;
  auto g = torch::zeros_like(x);
  auto flat = x.view(-1);
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double v = flat[i].item<double>();
    flat[i] = v + eps;
    const double up = f();
    flat[i] = v - eps;
    const double down = f();
    flat[i] = v;
    g.view(-1)[i] = (up - down) / (2 * eps);
  }
  return g;
}

SequenceClassifier tiny(int64_t labels = 2) {
  LoadOptions o;
  o.num_labels = labels;
  torch::manual_seed(3);
  auto m = load_sequence_classifier(test::tiny_model("tiny-bert").string(), o);
  m->eval();
  return m;
}

std::map<std::string, torch::Tensor> snapshot(Model& m) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, p] : base_named_parameters(m)) out[name] = p.detach().clone();
  return out;
}

void expect_same(Model& m, const std::map<std::string, torch::Tensor>& before) {
  for (auto& [name, p] : base_named_parameters(m)) EXPECT_TRUE(torch::equal(p, before.at(name))) << name;
}

std::shared_ptr<DiffPruning> diff_method(nlohmann::json config = nlohmann::json::object()) {
  return std::dynamic_pointer_cast<DiffPruning>(make_method("diff_pruning", config));
}

// A projected diff-pruning model with random diffs (seeded), as after training.
std::pair<std::shared_ptr<AdaptedModel>, std::shared_ptr<DiffPruning>> projected(uint64_t seed, double target = 0.05,
                                                                                  nlohmann::json config = {}) {
  auto model = std::make_shared<AdaptedModel>(tiny());
  auto m = diff_method(config.is_null() ? nlohmann::json::object() : config);
  model->add(m);
  torch::manual_seed(seed);
  {
    torch::NoGradGuard no_grad;
    for (auto& t : m->tensors())
      if (t.key.size() > 5 && t.key.compare(t.key.size() - 5, 5, ".diff") == 0) t.tensor.copy_(torch::randn_like(t.tensor) * 0.01);
    for (auto& t : model->head_tensors()) t.tensor.add_(torch::randn_like(t.tensor));
  }
  m->project(target);
  model->refreeze();
  return {model, m};
}

fs::path temp_path(const std::string& name) {
  fs::path d = fs::temp_directory_path() / fmt::format("peft-diff-{}", ::getpid());
  fs::create_directories(d);
  return d / name;
}

}  // namespace

// ---- hard-concrete gates ---------------------------------------------------------------------

TEST(HardConcrete, EvalGateAndExpectedL0) {
  auto la = torch::tensor({-5.0, 0.0, 5.0}, torch::kDouble);
  auto z = hard_concrete_eval(la);
  EXPECT_EQ(z[0].item<double>(), 0.0);
  EXPECT_NEAR(z[1].item<double>(), 0.0, 1e-12);  // sigmoid(0) * 3 - 1.5
  EXPECT_EQ(z[2].item<double>(), 1.0);
  // With l = -r the expected L0 is sigmoid(log alpha).
  EXPECT_TRUE(torch::allclose(hard_concrete_l0(la), torch::sigmoid(la)));
  HardConcrete skew{2.0, -0.5, 1.5};
  EXPECT_NEAR(hard_concrete_l0(la, skew)[1].item<double>(), 1 / (1 + std::exp(2.0 * std::log(0.5 / 1.5))), 1e-12);
  EXPECT_THROW(HardConcrete({1.0, 0.5, 1.5}).validate(), Error);
}

TEST(HardConcrete, FusedOpMatchesTensorFormulas) {
  torch::manual_seed(0);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto theta = torch::randn({5, 7}, opts), w = torch::randn({5, 7}, opts), la = torch::randn({5, 7}, opts) * 2;
  const uint64_t seed = 1234;
  auto u = hash_uniform(seed, 35, torch::kDouble).view({5, 7});
  EXPECT_GT(u.min().item<double>(), 0.0);
  EXPECT_LT(u.max().item<double>(), 1.0);
  auto [eff, l0] = gated_diff(theta, w, la, seed);
  EXPECT_TRUE(torch::allclose(eff, theta + hard_concrete_sample(la, u) * w, 1e-12, 1e-12));
  EXPECT_NEAR(l0.item<double>(), hard_concrete_l0(la).sum().item<double>(), 1e-10);
  // float noise is the same noise
  EXPECT_TRUE(torch::allclose(hash_uniform(seed, 35, torch::kFloat).to(torch::kDouble), u.view(-1)));
}

// The float loops (vectorised, with their own exp) agree with the double ones: values, expected L0 and
// both gradients, over several blocks with a ragged tail, gates far open and far shut, and beta != 1.
TEST(HardConcrete, FloatKernelsMatchDouble) {
  torch::manual_seed(5);
  const int64_t n = 5003;
  auto theta = torch::randn({n}, torch::kDouble), w = torch::randn({n}, torch::kDouble);
  auto la = torch::randn({n}, torch::kDouble) * 4;
  la.index_put_({torch::indexing::Slice(0, 20)}, torch::linspace(-120, 120, 20, torch::kDouble));
  auto coef = torch::randn({n}, torch::kDouble);
  for (double beta : {1.0, 2.0 / 3.0}) {
    const HardConcrete hc{beta, -0.1, 1.1};
    auto run = [&](torch::ScalarType type) {
      auto wt = w.to(type).clone().requires_grad_(true), lat = la.to(type).clone().requires_grad_(true);
      auto [eff, l0] = gated_diff(theta.to(type), wt, lat, 99, hc);
      ((eff * coef.to(type)).sum() + 0.3 * l0).backward();
      return std::make_tuple(eff.to(torch::kDouble), l0.item<double>(), wt.grad().to(torch::kDouble),
                             lat.grad().to(torch::kDouble));
    };
    const auto [eff64, l064, gw64, gla64] = run(torch::kDouble);
    const auto [eff32, l032, gw32, gla32] = run(torch::kFloat);
    EXPECT_TRUE(torch::allclose(eff32, eff64, 1e-5, 1e-5)) << "beta " << beta;
    EXPECT_NEAR(l032, l064, 1e-5 * l064) << "beta " << beta;
    EXPECT_TRUE(torch::allclose(gw32, gw64, 1e-5, 1e-5)) << "beta " << beta;
    EXPECT_TRUE(torch::allclose(gla32, gla64, 1e-4, 1e-5)) << "beta " << beta;
    EXPECT_TRUE(torch::isfinite(gla32).all().item<bool>());
  }
}

TEST(HardConcrete, FiniteDifferenceGradients) {
  torch::manual_seed(1);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto theta = torch::randn({4, 6}, opts);
  auto w = torch::randn({4, 6}, opts).requires_grad_(true);
  auto la = (torch::randn({4, 6}, opts) * 1.5).requires_grad_(true);
  auto coef = torch::randn({4, 6}, opts);
  const uint64_t seed = 77;
  auto objective = [&] {
    auto [eff, l0] = gated_diff(theta, w, la, seed);
    return (eff * coef).sum() + 0.7 * l0;
  };
  objective().backward();
  auto f = [&] { return objective().item<double>(); };
  EXPECT_TRUE(torch::allclose(w.grad(), numeric_grad(f, w.detach()), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(la.grad(), numeric_grad(f, la.detach()), 1e-6, 1e-6));
  EXPECT_GT(la.grad().abs().sum().item<double>(), 0.0);

  // The tensor-op sample, the same way (fixed noise).
  auto u = torch::rand({4, 6}, opts).clamp(1e-3, 1 - 1e-3);
  la.mutable_grad() = torch::Tensor();
  auto g = [&] { return (hard_concrete_sample(la, u) * coef).sum() + hard_concrete_l0(la).sum(); };
  g().backward();
  EXPECT_TRUE(torch::allclose(la.grad(), numeric_grad([&] { return g().item<double>(); }, la.detach()), 1e-6, 1e-6));
}

TEST(HardConcrete, ExactZerosAndOnesMatchClosedForm) {
  const int64_t n = 200000;
  for (double a : {-2.0, 0.0, 1.0, 5.0}) {
    const double p0 = hard_concrete_p_zero(a), p1 = hard_concrete_p_one(a);
    auto check = [&](const torch::Tensor& z, const char* how) {
      const double f0 = (z == 0).sum().item<double>() / n, f1 = (z == 1).sum().item<double>() / n;
      // 5 standard errors: a wrong formula (or a wrong stretch) is off by far more.
      EXPECT_NEAR(f0, p0, 5 * std::sqrt(p0 * (1 - p0) / n) + 1e-4) << how << " log_alpha " << a;
      EXPECT_NEAR(f1, p1, 5 * std::sqrt(p1 * (1 - p1) / n) + 1e-4) << how << " log_alpha " << a;
    };
    torch::manual_seed(9);
    auto la = torch::full({n}, a);
    check(hard_concrete_sample(la, torch::rand({n}).clamp(1e-7, 1 - 1e-7)), "tensor ops");
    auto [z, l0] = gated_diff(torch::zeros({n}), torch::ones({n}), la, 4242);  // theta + z * 1
    check(z, "fused");
  }
  // log alpha 5 (the init): gates start open almost always.
  EXPECT_GT(hard_concrete_p_one(5.0), 0.96);
}

// ---- the diff parametrisation ----------------------------------------------------------------

TEST(DiffPruning, StartsAsTheBaseAndNeverWritesIt) {
  auto base = tiny();
  auto in = test::tiny_input();
  const auto before_logits = base->forward(in).detach();
  const auto before = snapshot(*base);
  AdaptedModel model(base);
  auto m = diff_method();
  model.add(m);
  int64_t head = 0;
  for (auto& t : model.head_tensors()) head += t.tensor.numel();
  EXPECT_EQ(m->pruned_numel(), model.base_parameter_count() - head);  // all but the head
  EXPECT_TRUE(torch::equal(model.forward(in), before_logits));      // w = 0

  // One training step moves w, log alpha and the head; the base parameters stay bit-exact.
  model.model()->train();
  auto params = model.trainable_parameters();
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-2));
  auto logits = model.forward(in);  // samples the gates; penalty() is this forward's expected L0
  auto loss = model.head().loss(logits, torch::tensor({0L, 1L, 1L})) + 1e-3 * m->penalty();
  loss.backward();
  opt.step();
  for (auto& [name, p] : base_named_parameters(*model.model()))
    if (name.rfind("classifier.", 0) != 0) EXPECT_FALSE(p.grad().defined()) << name;
  for (auto& t : m->tensors()) EXPECT_TRUE(t.tensor.grad().defined()) << t.key;
  model.model()->eval();
  EXPECT_FALSE(torch::equal(model.forward(in), before_logits));
  for (auto& [name, p] : base_named_parameters(*model.model()))
    if (name.rfind("classifier.", 0) != 0) EXPECT_TRUE(torch::equal(p, before.at(name))) << name;
  model.remove_all();  // detached: the plain base model again
  for (auto& [name, p] : base_named_parameters(*model.model()))
    if (name.rfind("classifier.", 0) != 0) EXPECT_TRUE(torch::equal(p, before.at(name))) << name;
}

TEST(DiffPruning, ForwardUsesThetaPlusDeltaEverywhere) {
  auto model = std::make_shared<AdaptedModel>(tiny());
  auto m = diff_method();
  model->add(m);
  torch::manual_seed(4);
  {
    torch::NoGradGuard no_grad;
    for (auto& t : m->tensors()) t.tensor.copy_(torch::randn_like(t.tensor) * (t.key.find("log_alpha") != std::string::npos ? 2.0 : 0.05));
  }
  auto in = test::tiny_input();
  const auto logits = model->forward(in).detach();
  // The same weights written into a plain copy of the base (embeddings, LayerNorms, linears alike).
  auto plain = tiny();
  {
    torch::NoGradGuard no_grad;
    auto deltas = m->deltas();
    auto params = base_named_parameters(*plain);
    size_t i = 0;
    for (auto& [name, p] : params) {
      if (name.rfind("classifier.", 0) == 0) continue;
      p.add_(deltas.at(i++));
    }
    EXPECT_EQ(i, deltas.size());
  }
  EXPECT_TRUE(torch::allclose(plain->forward(in), logits, 1e-5, 1e-6));
}

TEST(DiffPruning, ProjectionIsExactWithDeterministicTies) {
  auto [model, m] = projected(5, 0.05);
  const int64_t n = m->pruned_numel();
  const int64_t k = std::llround(0.05 * double(n));
  auto diff = m->sparse_diff(*model->model(), "tiny");
  EXPECT_EQ(diff.nnz(), k);
  // Every kept |delta| >= every dropped one.
  double kept_min = 1e9, dropped_max = 0;
  {
    // rebuild deltas before projection: the same seed gives the same w
    auto [model2, m2] = projected(5, 1.0);
    auto all = m2->deltas();
    size_t ti = 0;
    for (auto& t : diff.tensors) {
      auto a = all.at(ti++).abs().flatten();
      auto keep = torch::zeros_like(a, torch::kBool).index_fill_(0, t.indices, true);
      if (keep.any().item<bool>()) kept_min = std::min(kept_min, a.masked_select(keep).min().item<double>());
      if ((~keep).any().item<bool>()) dropped_max = std::max(dropped_max, a.masked_select(~keep).max().item<double>());
    }
  }
  EXPECT_GE(kept_min, dropped_max);

  // All deltas equal: the projection keeps the first k entries in tensor order.
  auto model3 = std::make_shared<AdaptedModel>(tiny());
  auto m3 = diff_method();
  model3->add(m3);
  {
    torch::NoGradGuard no_grad;
    for (auto& t : m3->tensors())
      if (t.key.find(".diff") != std::string::npos) t.tensor.fill_(0.5);
  }
  auto report = m3->project(0.01);
  EXPECT_EQ(report.nnz, std::llround(0.01 * double(m3->pruned_numel())));
  EXPECT_EQ(report.ties_kept, report.nnz);
  auto d3 = m3->sparse_diff(*model3->model(), "tiny");
  int64_t expect_next = 0, remaining = report.nnz;
  for (auto& t : d3.tensors) {
    const int64_t numel = t.indices.numel();
    if (remaining > 0) {
      EXPECT_EQ(numel, std::min<int64_t>(remaining, torch::ones(t.shape).numel())) << t.name;
      if (numel > 0) EXPECT_EQ(t.indices[0].item<int64_t>(), expect_next);
      remaining -= numel;
    } else {
      EXPECT_EQ(numel, 0) << t.name;
    }
  }
}

// Fewer open gates than the budget: the remaining places go to the closed entries with the largest
// |w| * P(z != 0), not to the first entries in tensor order.
TEST(DiffPruning, ProjectionFillsTheBudgetByGateProbabilityTimesMagnitude) {
  auto model = std::make_shared<AdaptedModel>(tiny());
  auto m = diff_method();
  model->add(m);
  torch::manual_seed(11);
  torch::Tensor open_w, last_w, last_alpha;
  {
    torch::NoGradGuard no_grad;
    for (auto& t : m->tensors()) {
      if (t.key.find(".log_alpha") != std::string::npos) {
        t.tensor.fill_(-8);  // closed: z_eval = 0
        last_alpha = t.tensor;
      } else if (t.key.find(".diff") != std::string::npos) {
        t.tensor.copy_(torch::randn_like(t.tensor));
        last_w = t.tensor;
      }
    }
    last_alpha.view(-1)[0] = 4;  // one open gate
    last_alpha.view(-1)[1] = -2; // closed, but far more likely to open than the rest
    last_w.view(-1)[1] = 0.1;
  }
  const auto report = m->project(3.0 / double(m->pruned_numel()));
  ASSERT_EQ(report.nnz, 3);
  EXPECT_EQ(report.threshold, 0.0);
  auto diff = m->sparse_diff(*model->model(), "tiny");
  const auto& kept = diff.tensors.back();
  // Entry 1: |w| 0.1 but P(z != 0) = sigmoid(-2) = 0.12, against sigmoid(-8) = 3e-4 for the others
  // (|w| ~ N(0, 1): it would take |w| > 36 to beat it).
  std::vector<int64_t> got;
  for (auto& t : diff.tensors)
    for (int64_t i = 0; i < t.indices.numel(); ++i) got.push_back(t.indices[i].item<int64_t>());
  ASSERT_EQ(got.size(), 3u);
  ASSERT_GE(kept.indices.numel(), 2);
  EXPECT_EQ(kept.indices[0].item<int64_t>(), 0);
  EXPECT_EQ(kept.indices[1].item<int64_t>(), 1);
}

// ---- the density controller -------------------------------------------------------------------

TEST(SparsityController, TargetFallsGeometricallyBetweenRampStartAndEnd) {
  SparsityController c({.target = 0.01, .initial_lambda = 1e-7, .ramp_start = 0.2, .ramp_end = 0.6, .rate = 0.1});
  EXPECT_DOUBLE_EQ(c.target(0, 100), 1.0);
  EXPECT_DOUBLE_EQ(c.target(20, 100), 1.0);
  EXPECT_NEAR(c.target(40, 100), 0.1, 1e-12);  // halfway in log space
  EXPECT_NEAR(c.target(60, 100), 0.01, 1e-12);
  EXPECT_NEAR(c.target(100, 100), 0.01, 1e-12);
  EXPECT_THROW(SparsityController({.target = 0.01, .initial_lambda = 1e-7, .ramp_start = 0.6, .ramp_end = 0.6}), Error);
  EXPECT_THROW(SparsityController({.target = 0.0}), Error);
}

TEST(SparsityController, RisesAboveTheTargetBrakesNearItFallsBelowIt) {
  SparsityController c({.target = 0.01, .initial_lambda = 1e-6, .ramp_start = 0, .ramp_end = 0.01, .rate = 0.1});
  const double start = c.lambda();
  EXPECT_NEAR(start, 1e-6, 1e-15);
  // Dense and not falling: the multiplier rises by at most `rate` in log space per step.
  for (int k = 1; k <= 5; ++k) c.update(1.0, 100 + k, 1000);
  EXPECT_NEAR(std::log(c.lambda() / start), 0.5, 1e-9);
  // Falling fast toward the target (it would be passed within the gates' momentum horizon): brake.
  const double before_brake = c.lambda();
  c.update(0.5, 106, 1000);
  c.update(0.02, 107, 1000);
  EXPECT_LT(c.lambda(), before_brake);
  // Below the target: falls.
  const double before_low = c.lambda();
  c.update(0.005, 108, 1000);
  EXPECT_NEAR(std::log(before_low / c.lambda()), 0.1 * std::log(2.0), 1e-9);
  // Slightly above and steady: rises again, in proportion to the gap.
  const double before_high = c.lambda();
  c.update(0.011, 109, 1000);
  c.update(0.011, 110, 1000);
  EXPECT_NEAR(std::log(c.lambda() / before_high), 2 * 0.1 * std::log(1.1), 1e-9);
  EXPECT_DOUBLE_EQ(c.state()[1].item<double>(), 0.011);  // the last density is state too (resume)
}

TEST(DiffPruning, FixedMaskStageTrainsOnlyTheKeptEntries) {
  auto [model, m] = projected(6, 0.02);
  ASSERT_EQ(m->stage(), DiffPruning::Stage::Mask);
  for (auto& t : m->tensors()) EXPECT_EQ(t.key.find("log_alpha"), std::string::npos);  // gates are gone
  const auto d0 = m->sparse_diff(*model->model(), "tiny");
  model->model()->train();
  torch::optim::AdamW opt(model->trainable_parameters(), torch::optim::AdamWOptions(1e-2));
  auto in = test::tiny_input();
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    model->head().loss(model->forward(in), torch::tensor({0L, 1L, 1L})).backward();
    opt.step();
  }
  const auto d1 = m->sparse_diff(*model->model(), "tiny");
  EXPECT_EQ(d1.nnz(), d0.nnz());
  bool moved = false;
  for (size_t i = 0; i < d0.tensors.size(); ++i) {
    EXPECT_TRUE(torch::equal(d0.tensors[i].indices, d1.tensors[i].indices));
    moved |= !torch::equal(d0.tensors[i].values, d1.tensors[i].values);
  }
  EXPECT_TRUE(moved);
  // Entries outside the mask are exactly zero in every w (no gradient, and decay keeps zero at zero).
  int64_t nonzero = 0;
  for (auto& t : m->tensors()) nonzero += t.tensor.ne(0).sum().item<int64_t>();
  EXPECT_LE(nonzero, d0.nnz());
  EXPECT_GT(nonzero, d0.nnz() / 2);
}

TEST(DiffPruning, StructuredGroupsGateWholeTensorsOrRows) {
  auto model = std::make_shared<AdaptedModel>(tiny());
  auto m = diff_method({{"structured", true}});
  model->add(m);
  int64_t groups = 0;
  torch::Tensor first_group;
  for (auto& t : m->tensors())
    if (t.key.find("group_log_alpha") != std::string::npos) {
      ++groups;
      EXPECT_EQ(t.tensor.dim(), 0);
      if (!first_group.defined()) first_group = t.tensor;
    }
  EXPECT_EQ(groups, int64_t(m->deltas().size()));
  {
    torch::NoGradGuard no_grad;
    for (auto& t : m->tensors())
      if (t.key.find(".diff") != std::string::npos) t.tensor.fill_(0.1);
    first_group.fill_(-10);  // closes the whole first tensor
  }
  auto deltas = m->deltas();
  EXPECT_EQ(deltas[0].abs().sum().item<double>(), 0.0);
  EXPECT_GT(deltas[1].abs().sum().item<double>(), 0.0);
  // Expected L0 = sum over entries of P(z_entry != 0) P(z_group != 0); with l = -r both are sigmoids.
  const double s5 = 1 / (1 + std::exp(-5.0)), sm10 = 1 / (1 + std::exp(10.0));
  const double want = double(deltas[0].numel()) * s5 * sm10 + double(m->pruned_numel() - deltas[0].numel()) * s5 * s5;
  EXPECT_NEAR(m->expected_l0(), want, 1e-3 * want);
  model->model()->train();
  model->forward(test::tiny_input());
  EXPECT_NEAR(m->penalty().item<double>(), want, 1e-3 * want);

  auto rows = diff_method({{"structured", true}, {"group", "row"}});
  AdaptedModel model2(tiny());
  model2.add(rows);
  for (auto& t : rows->tensors())
    if (t.key.find("query.weight.group_log_alpha") != std::string::npos)
      EXPECT_EQ(t.tensor.sizes(), torch::IntArrayRef({32, 1}));
}

TEST(DiffPruning, ConfigErrors) {
  for (double bad : {0.0, -0.1, 1.5, std::nan("")})
    EXPECT_THAT([&] { make_method("diff_pruning", {{"target_sparsity", bad}}); },
                ::testing::ThrowsMessage<Error>(HasSubstr("target_sparsity must be in (0, 1]")));
  EXPECT_NO_THROW(make_method("diff_pruning", {{"target_sparsity", 1.0}}));
  auto [model, m] = projected(1, 0.05);
  EXPECT_THROW(m->project(0.0), Error);
  EXPECT_THROW(m->project(1.01), Error);
  EXPECT_THAT([] { make_method("diff_pruning", {{"target_parameters", "nothing.*"}}); }, ::testing::Not(::testing::Throws<Error>()));
  AdaptedModel plain(tiny());
  EXPECT_THAT([&] { plain.add(diff_method({{"target_parameters", "nothing.*"}})); },
              ::testing::ThrowsMessage<Error>(HasSubstr("matches no base parameter")));
  EXPECT_THROW(make_method("diff_pruning", {{"value_dtype", "F8"}}), Error);
  EXPECT_THAT([] { make_method("diff_pruning", {{"sparsity_control", "auto"}}); },
              ::testing::ThrowsMessage<Error>(HasSubstr("sparsity_control must be \"target\" or \"fixed\"")));
  EXPECT_THAT([] { make_method("diff_pruning", {{"ramp_start", 0.7}, {"ramp_end", 0.5}}); },
              ::testing::ThrowsMessage<Error>(HasSubstr("ramp_start < ramp_end")));
  EXPECT_THROW(make_method("diff_pruning", {{"l0_lambda", 0.0}}), Error);  // the multiplier needs a start
  EXPECT_NO_THROW(make_method("diff_pruning", {{"l0_lambda", 0.0}, {"sparsity_control", "fixed"}}));
  EXPECT_THROW(make_method("diff_pruning", {{"mask_lr", -1.0}}), Error);
}

// ---- sparse task files -----------------------------------------------------------------------

TEST(SparseDiff, RoundTripApplyAndRevertBitExactly) {
  auto [model, m] = projected(7, 0.05);
  auto in = test::tiny_input();
  const auto task_logits = model->forward(in).detach();
  const SparseDiff diff = m->sparse_diff(*model->model(), "tiny");
  const auto path = temp_path("t.peftdiff").string();
  write_sparse_diff(path, diff);
  const SparseDiff back = read_sparse_diff(path);
  ASSERT_EQ(back.tensors.size(), diff.tensors.size());
  EXPECT_EQ(back.base_checksum, diff.base_checksum);
  for (size_t i = 0; i < diff.tensors.size(); ++i) {
    EXPECT_TRUE(torch::equal(back.tensors[i].indices, diff.tensors[i].indices));
    EXPECT_TRUE(torch::equal(back.tensors[i].values, diff.tensors[i].values));
  }

  auto base = tiny();
  const auto before = snapshot(*base);
  const auto undo = apply_diff(*base, back);
  EXPECT_TRUE(torch::allclose(base->forward(in), task_logits, 1e-5, 1e-6));
  // Only the listed entries changed.
  int64_t changed = 0;
  for (auto& [name, p] : base_named_parameters(*base))
    if (name.rfind("classifier.", 0) != 0) changed += p.ne(before.at(name)).sum().item<int64_t>();
  EXPECT_LE(changed, diff.nnz());
  EXPECT_GT(changed, diff.nnz() / 2);
  revert_diff(*base, undo);
  expect_same(*base, before);

  // F16 values: smaller file, values rounded to half.
  SparseDiff half = diff;
  half.value_dtype = torch::kHalf;
  const auto half_path = temp_path("h.peftdiff").string();
  write_sparse_diff(half_path, half);
  EXPECT_LT(file_size(half_path), file_size(path));
  const auto hb = read_sparse_diff(half_path);
  EXPECT_TRUE(torch::equal(hb.tensors[3].values, diff.tensors[3].values.to(torch::kHalf).to(torch::kFloat)));
}

TEST(SparseDiff, BadInputIsAClearErrorAndLeavesTheModelUntouched) {
  auto [model, m] = projected(8, 0.05);
  const SparseDiff diff = m->sparse_diff(*model->model(), "tiny");
  const auto path = temp_path("bad.peftdiff").string();
  write_sparse_diff(path, diff);

  // Another base: same shapes, one weight different.
  auto other = tiny();
  {
    torch::NoGradGuard no_grad;
    base_named_parameters(*other).front().second.view(-1)[0] += 1e-3;
  }
  auto before = snapshot(*other);
  EXPECT_THAT([&] { apply_diff(*other, diff); }, ::testing::ThrowsMessage<Error>(HasSubstr("another base model")));
  expect_same(*other, before);

  // Shape mismatch.
  SparseDiff reshaped = diff;
  reshaped.tensors[2].shape = {1, 2, 3};
  auto base = tiny();
  before = snapshot(*base);
  EXPECT_THAT([&] { apply_diff(*base, reshaped); }, ::testing::ThrowsMessage<Error>(HasSubstr("has shape")));
  // A head for another number of labels.
  auto three = tiny(3);
  auto before3 = snapshot(*three);
  EXPECT_THAT([&] { apply_diff(*three, diff); }, ::testing::ThrowsMessage<Error>(HasSubstr("head tensor")));
  expect_same(*three, before3);

  // Truncated and corrupted files.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto cut = temp_path("cut.peftdiff"), flipped = temp_path("flip.peftdiff");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  std::string f = bytes;
  f[f.size() / 2] ^= 0x10;
  std::ofstream(flipped, std::ios::binary) << f;
  std::ofstream(temp_path("tiny.peftdiff"), std::ios::binary) << "PEFT";
  for (const auto& p : {cut, flipped})
    EXPECT_THAT([&] { read_sparse_diff(p.string()); }, ::testing::ThrowsMessage<Error>(HasSubstr("truncated or corrupted")));
  EXPECT_THAT([&] { read_sparse_diff(temp_path("tiny.peftdiff").string()); },
              ::testing::ThrowsMessage<Error>(HasSubstr("not a peft diff file")));
  expect_same(*base, before);
}

// ---- the multi-task store --------------------------------------------------------------------

TEST(DiffStore, SwitchesTasksAndRestoresTheBase) {
  auto [ma, a] = projected(11, 0.05);
  auto [mb, b] = projected(12, 0.02);
  const auto da = a->sparse_diff(*ma->model(), "tiny"), db = b->sparse_diff(*mb->model(), "tiny");
  auto in = test::tiny_input();
  const auto logits_a = ma->forward(in).detach(), logits_b = mb->forward(in).detach();

  DiffStore store(tiny());
  const auto base = snapshot(*store.model());
  store.add("a", da);
  store.add("b", db);
  EXPECT_EQ(store.tasks(), (std::vector<std::string>{"a", "b"}));
  store.activate("a");
  EXPECT_TRUE(torch::allclose(store.model()->forward(in), logits_a, 1e-5, 1e-6));
  store.activate("b");
  EXPECT_EQ(store.active(), "b");
  EXPECT_TRUE(torch::allclose(store.model()->forward(in), logits_b, 1e-5, 1e-6));
  store.activate("a");
  store.activate("a");
  EXPECT_TRUE(torch::allclose(store.model()->forward(in), logits_a, 1e-5, 1e-6));
  // A diff for another base is refused when added, with a task active; nothing changes.
  SparseDiff foreign = db;
  foreign.base_checksum ^= 1;
  EXPECT_THAT([&] { store.add("c", foreign); }, ::testing::ThrowsMessage<Error>(HasSubstr("another base model")));
  EXPECT_EQ(store.active(), "a");
  EXPECT_TRUE(torch::allclose(store.model()->forward(in), logits_a, 1e-5, 1e-6));
  store.deactivate();
  expect_same(*store.model(), base);
  EXPECT_THROW(store.activate("zzz"), Error);
}
