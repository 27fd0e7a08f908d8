// AdaMix: configs and presets, parameter counts in closed form, random routing (uniform, per site,
// seeded), consistency loss by hand, merging = one adapter with averaged weights, evaluation modes,
// save/load, bad input.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/methods/adamix.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/param_count.h"
#include "peft/methods/registry.h"
#include "peft/train/adapted.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using peft::test::adapted;
using peft::test::expect_error;
using ::testing::HasSubstr;

namespace {

// tiny-bert: hidden 32, 2 layers, 3 labels.
constexpr int64_t d = 32, L = 2, head = 32 * 3 + 3;

std::map<std::string, torch::Tensor> tensors_of(peft::AdaptedModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (auto& t : m.trainable_tensors()) out[t.key] = t.tensor.detach().clone();
  return out;
}

// Maps expert keys onto a single module's keys (".adamix_down.3." -> ".adapter_down.") and averages
// the experts of each; other keys (the head) are copied.
std::map<std::string, torch::Tensor> averaged(const std::map<std::string, torch::Tensor>& experts,
                                              const std::vector<std::pair<std::string, std::string>>& renames) {
  std::map<std::string, std::vector<torch::Tensor>> groups;
  for (auto& [key, t] : experts) {
    std::string k = key;
    for (auto& [from, to] : renames) k = std::regex_replace(k, std::regex("\\." + from + "\\.\\d+\\."), "." + to + ".");
    groups[k].push_back(t);
  }
  std::map<std::string, torch::Tensor> out;
  for (auto& [k, ts] : groups) out[k] = torch::stack(ts).mean(0);
  return out;
}

void load_into(peft::AdaptedModel& m, const std::map<std::string, torch::Tensor>& values) {
  for (auto& t : m.trainable_tensors()) {
    ASSERT_TRUE(values.count(t.key)) << t.key;
    peft::copy_checked(t.tensor, values.at(t.key), t.key);
  }
}

torch::Tensor eval_forward(peft::AdaptedModel& m) {
  torch::NoGradGuard no_grad;
  return m.forward(peft::test::tiny_input());
}

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / fmt::format("peft-adamix-{}-{}", ::getpid(), name);
  fs::remove_all(p);
  return p;
}

}  // namespace

TEST(AdaMixConfig, DefaultsPresetsAndJsonRoundTrip) {
  auto j = peft::method_type("adamix").defaults();
  EXPECT_EQ(j["num_experts"], 4);
  EXPECT_EQ(j["share"], "up");
  EXPECT_EQ(j["consistency_weight"], 1.0);
  EXPECT_EQ(peft::method_type("adamix").peft_type, "ADAMIX");
  EXPECT_EQ(peft::method_type("adamix_lora").peft_type, "ADAMIX_LORA");

  auto items = peft::parse_method_spec("adamix");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].type, "adamix");
  EXPECT_EQ(items[0].config["r"], 24);
  EXPECT_EQ(items[0].config["placement"], "ffn");
  auto lora = peft::parse_method_spec("adamix_lora:num_experts=2");
  EXPECT_EQ(lora[0].config["share"], "B");
  EXPECT_EQ(lora[0].config["lora_alpha"], 32);
  EXPECT_EQ(lora[0].config["num_experts"], 2);

  peft::AdaMixConfig c;
  c.num_experts = 3;
  c.share = "down";
  c.consistency.weight = 0.5;
  c.consistency.ce = "first";
  EXPECT_EQ(peft::AdaMixConfig::from_json(c.to_json()).to_json(), c.to_json());
  peft::AdaMixLoraConfig lc;
  lc.share = "A";
  lc.target_modules = peft::TargetModules::pattern(".*query");
  EXPECT_EQ(peft::AdaMixLoraConfig::from_json(lc.to_json()).to_json(), lc.to_json());
}

TEST(AdaMixParams, TrainingAndInferenceCountsInClosedForm) {
  const int64_t r = 4, down = r * d + r, up = d * r + d;  // one down / up projection with biases
  struct Case {
    std::string spec;
    int64_t per_site;
  };
  for (auto& c : std::vector<Case>{{"adamix:r=4", 4 * down + up},
                                   {"adamix:r=4,share=down", down + 4 * up},
                                   {"adamix:r=4,share=none,num_experts=3", 3 * (down + up)}}) {
    auto m = adapted(c.spec);
    auto report = peft::count_parameters(m);
    EXPECT_EQ(report.trainable, L * c.per_site + head) << c.spec;
    EXPECT_EQ(report.inference, L * (down + up) + head) << c.spec;
  }
  // LoRA on query + value of both layers: A r x 32, B 32 x r.
  auto m = adapted("adamix_lora:r=4");
  auto report = peft::count_parameters(m);
  EXPECT_EQ(report.trainable, 2 * L * (4 * r * d + d * r) + head);
  EXPECT_EQ(report.inference, 2 * L * (r * d + d * r) + head);
  // A single adapter's inference count is its training count.
  auto b = adapted("bottleneck:r=4");
  EXPECT_EQ(peft::count_parameters(b).inference, peft::count_parameters(b).trainable);
}

TEST(AdaMixRouting, ExpertsStartEqualAsInTheAuthorsCode) {
  auto m = adapted("adamix:r=4,share=none,init=near_identity");
  auto t = tensors_of(m);
  const std::string site = "base_model.model.bert.encoder.layer.0.output.";
  ASSERT_TRUE(t.count(site + "adamix_down.3.weight")) << t.begin()->first;
  EXPECT_TRUE(torch::equal(t[site + "adamix_down.0.weight"], t[site + "adamix_down.3.weight"]));
  EXPECT_GT(t[site + "adamix_down.0.weight"].abs().sum().item<double>(), 0);
}

// Random routing outside training (mode random) draws exactly as training does, without dropout:
// every output is one route's output, each site draws on its own, all routes occur, and the same
// seed gives the same route.
TEST(AdaMixRouting, EachSiteDrawsUniformlyAndIndependentlyFromTheSeed) {
  auto m = adapted("adamix:r=4,num_experts=2,share=up");
  peft::test::perturb(m, 3);
  const auto experts = tensors_of(m);
  // The four routes (site 0 expert i, site 1 expert j) as single adapters.
  std::vector<torch::Tensor> routes;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      auto single = adapted("bottleneck:r=4");
      std::map<std::string, torch::Tensor> chosen;
      for (auto& [key, t] : experts) {
        std::smatch mt;
        if (std::regex_search(key, mt, std::regex(R"(layer\.(\d)\..*adamix_down\.(\d)\.)"))) {
          if (std::stoi(mt[2]) != (mt[1] == "0" ? i : j)) continue;
        }
        chosen[std::regex_replace(std::regex_replace(key, std::regex(R"(adamix_down\.\d\.)"), "adapter_down."),
                                  std::regex(R"(adamix_up\.0\.)"), "adapter_up.")] = t;
      }
      load_into(single, chosen);
      routes.push_back(eval_forward(single));
    }
  for (size_t a = 0; a < routes.size(); ++a)
    for (size_t b = a + 1; b < routes.size(); ++b) ASSERT_FALSE(torch::allclose(routes[a], routes[b]));

  peft::set_adamix_mode(m, peft::AdaMixMode::parse("random"));
  std::vector<int> seen(4, 0);
  for (int seed = 0; seed < 40; ++seed) {
    peft::test::seed_all(seed);
    torch::Tensor out = eval_forward(m);
    int match = -1;
    for (int r = 0; r < 4; ++r)
      if (torch::allclose(out, routes[r], 1e-5, 1e-6)) match = r;
    ASSERT_GE(match, 0) << "seed " << seed << ": output is no single route";
    ++seen[match];
  }
  for (int r = 0; r < 4; ++r) EXPECT_GE(seen[r], 3) << "route " << r << " drawn " << seen[r] << " / 40";
  peft::test::seed_all(7);
  torch::Tensor a = eval_forward(m);
  peft::test::seed_all(7);
  EXPECT_TRUE(torch::equal(a, eval_forward(m)));
}

// In training only the drawn experts take part, so the others get no gradient at all (AdamW then
// leaves them alone, as separate modules do in the authors' code).
TEST(AdaMixRouting, TrainingPassGivesGradientsToTheDrawnExpertsOnly) {
  for (std::string spec : {"adamix:r=4,share=none", "adamix_lora:r=2,share=none"}) {
    auto m = adapted(spec);
    peft::test::perturb(m, 2);
    m.model()->train();
    peft::test::seed_all(5);
    m.head().loss(m.forward(peft::test::tiny_input()), torch::tensor({0, 2, 1})).backward();
    std::map<std::string, int> with_grad;  // "<site> <side>" -> experts with a gradient
    for (auto& t : m.methods().front()->tensors()) {
      if (t.key.size() < 7 || t.key.compare(t.key.size() - 7, 7, ".weight") != 0) continue;
      std::smatch mt;
      ASSERT_TRUE(std::regex_search(t.key, mt, std::regex(R"(\.(\w+)\.\d+\.weight$)"))) << t.key;
      const bool grad = t.tensor.grad().defined() && t.tensor.grad().abs().sum().item<double>() > 0;
      with_grad[t.site + " " + mt[1].str()] += grad ? 1 : 0;
    }
    EXPECT_EQ(with_grad.size(), spec.rfind("adamix_lora", 0) == 0 ? 2u * 2 * L : 2u * L) << spec;
    for (auto& [side, n] : with_grad) EXPECT_EQ(n, 1) << spec << ": " << side;
  }
}

TEST(AdaMixConsistency, SymmetricKlAndLossByHand) {
  torch::Tensor l1 = torch::tensor({{1.0, -0.5, 2.0}, {0.3, 0.1, -1.0}}), l2 = torch::tensor({{0.2, 0.4, 1.0}, {-1.0, 0.5, 0.0}});
  auto p1 = torch::softmax(l1, 1), p2 = torch::softmax(l2, 1);
  const double kl12 = (p1 * (p1.log() - p2.log())).sum(1).mean().item<double>();
  const double kl21 = (p2 * (p2.log() - p1.log())).sum(1).mean().item<double>();
  EXPECT_NEAR(peft::symmetric_kl(l1, l2).item<double>(), 0.5 * (kl12 + kl21), 1e-6);
  EXPECT_NEAR(peft::symmetric_kl(l1, l1).item<double>(), 0.0, 1e-7);

  peft::HeadSpec cls{peft::HeadKind::Classification, 3};
  torch::Tensor labels = torch::tensor({2, 0}, torch::kLong);
  const double ce1 = -(p1[0][2].log() + p1[1][0].log()).item<double>() / 2;
  const double ce2 = -(p2[0][2].log() + p2[1][0].log()).item<double>() / 2;
  peft::ConsistencyOptions o;
  o.weight = 0.7;
  EXPECT_NEAR(peft::consistency_loss(cls, l1, l2, labels, o).item<double>(),
              0.5 * (ce1 + ce2) + 0.7 * 0.5 * (kl12 + kl21), 1e-5);
  o.ce = "first";
  EXPECT_NEAR(peft::consistency_loss(cls, l1, l2, labels, o).item<double>(), ce1 + 0.7 * 0.5 * (kl12 + kl21), 1e-5);

  peft::HeadSpec reg{peft::HeadKind::Regression, 1};
  torch::Tensor y1 = torch::tensor({{1.0}, {2.0}}), y2 = torch::tensor({{1.5}, {1.0}}), t = torch::tensor({1.0, 3.0});
  o = {};  // weight 1, CE (here MSE) averaged
  const double mse1 = (0.0 + 1.0) / 2, mse2 = (0.25 + 4.0) / 2, between = (0.25 + 1.0) / 2;
  EXPECT_NEAR(peft::consistency_loss(reg, y1, y2, t, o).item<double>(), 0.5 * (mse1 + mse2) + between, 1e-6);
}

// The trainer's loss hook: two forwards (independent routes and dropout) with consistency, one without.
TEST(AdaMixConsistency, TrainingLossRunsTwoRoutedPassesAndMatchesByHand) {
  auto m = std::make_shared<peft::AdaptedModel>(adapted("adamix:r=4,consistency_weight=0.5"));
  peft::test::perturb(*m, 4);
  auto trainable = peft::train::trainable_adapted(m, "tiny", nlohmann::json::object());
  ASSERT_TRUE(bool(trainable.loss));
  m->model()->train();
  const auto in = peft::test::tiny_input();
  torch::Tensor labels = torch::tensor({0, 2, 1}, torch::kLong);

  peft::test::seed_all(21);
  const double loss = trainable.loss(in, labels).item<double>();
  peft::test::seed_all(21);
  torch::Tensor o1 = m->forward(in), o2 = m->forward(in);
  EXPECT_FALSE(torch::allclose(o1, o2));  // different routes / dropout
  const peft::HeadSpec head = m->head();
  const double hand = 0.5 * (head.loss(o1, labels) + head.loss(o2, labels)).item<double>() +
                      0.5 * peft::symmetric_kl(o1, o2).item<double>();
  EXPECT_NEAR(loss, hand, 1e-5);

  int calls = 0;
  auto method = m->methods().front();
  auto counting = [&] {
    ++calls;
    return m->forward(in);
  };
  method->training_loss(counting, head, labels);
  EXPECT_EQ(calls, 2);
  auto off = adapted("adamix:r=4,consistency_weight=0");
  calls = 0;
  off.methods().front()->training_loss([&] { ++calls; return off.forward(in); }, head, labels);
  EXPECT_EQ(calls, 1);
}

// Module merging: the merged mixture computes exactly what a single adapter with the averaged
// weights computes, and finalize() leaves one down and one up per site (one adapter's parameters).
TEST(AdaMixMerge, MergedAdapterEqualsSingleAdapterWithAveragedWeights) {
  for (std::string share : {"up", "down", "none"}) {
    auto m = adapted("adamix:r=4,share=" + share);
    peft::test::perturb(m, 5);
    torch::Tensor merged = eval_forward(m);
    auto single = adapted("bottleneck:r=4");
    load_into(single, averaged(tensors_of(m), {{"adamix_down", "adapter_down"}, {"adamix_up", "adapter_up"}}));
    torch::Tensor expected = eval_forward(single);
    EXPECT_TRUE(torch::allclose(merged, expected, 1e-6, 1e-6)) << share << (merged - expected).abs().max();

    m.finalize();
    EXPECT_TRUE(torch::allclose(eval_forward(m), expected, 1e-6, 1e-6)) << share;
    std::set<std::string> keys;
    for (auto& t : m.methods().front()->tensors()) keys.insert(t.key.substr(t.key.find("encoder.")));
    EXPECT_EQ(keys, (std::set<std::string>{"encoder.layer.0.output.adamix_down.0.bias", "encoder.layer.0.output.adamix_down.0.weight",
                                           "encoder.layer.0.output.adamix_up.0.bias", "encoder.layer.0.output.adamix_up.0.weight",
                                           "encoder.layer.1.output.adamix_down.0.bias", "encoder.layer.1.output.adamix_down.0.weight",
                                           "encoder.layer.1.output.adamix_up.0.bias", "encoder.layer.1.output.adamix_up.0.weight"}));
    // Same parameters in the model as the single adapter: inference runs one adapter's projections.
    EXPECT_EQ(peft::count_parameters(m).added, peft::count_parameters(single).added);
    EXPECT_EQ(peft::count_parameters(m).trainable, peft::count_parameters(single).trainable);
    EXPECT_EQ(m.methods().front()->config()["num_experts"], 1);
  }
}

TEST(AdaMixMerge, MergedLoraEqualsSingleLoraAndFoldsIntoTheWeights) {
  auto m = adapted("adamix_lora:r=4,lora_alpha=32,share=B");
  peft::test::perturb(m, 6);
  torch::Tensor merged = eval_forward(m);
  auto single = adapted("lora:r=4,lora_alpha=32");
  load_into(single, averaged(tensors_of(m), {{"lora_A", "lora_A"}, {"lora_B", "lora_B"}}));
  torch::Tensor expected = eval_forward(single);
  EXPECT_TRUE(torch::allclose(merged, expected, 1e-6, 1e-6)) << (merged - expected).abs().max();

  ASSERT_TRUE(m.mergeable());
  m.merge();  // W += s · mean(B) · mean(A)
  EXPECT_TRUE(torch::allclose(eval_forward(m), expected, 1e-5, 1e-5));
  EXPECT_NO_THROW(peft::set_adamix_mode(m, peft::AdaMixMode::parse("merged")));
  expect_error([&] { peft::set_adamix_mode(m, peft::AdaMixMode::parse("random")); }, "unmerge");
  m.unmerge();
  EXPECT_TRUE(torch::allclose(eval_forward(m), merged, 1e-5, 1e-6));
  m.finalize();
  EXPECT_EQ(m.methods().front()->tensors().size(), 2u * 2 * L);  // one A and one B per targeted layer
  EXPECT_TRUE(torch::allclose(eval_forward(m), expected, 1e-6, 1e-6));
}

TEST(AdaMixModes, EnsembleAveragesProbabilitiesOfIndependentRoutes) {
  auto m = std::make_shared<peft::AdaptedModel>(adapted("adamix:r=4"));
  peft::test::perturb(*m, 7);
  auto trainable = peft::train::trainable_adapted(m, "tiny", nlohmann::json::object());
  const auto in = peft::test::tiny_input();
  torch::NoGradGuard no_grad;
  torch::Tensor merged = trainable.forward(in);

  peft::set_adamix_mode(*m, peft::AdaMixMode::parse("ensemble:3"));
  peft::test::seed_all(9);
  torch::Tensor ensemble = trainable.forward(in);
  peft::set_adamix_mode(*m, peft::AdaMixMode::parse("random"));
  peft::test::seed_all(9);
  std::vector<torch::Tensor> probs;
  for (int i = 0; i < 3; ++i) probs.push_back(torch::softmax(trainable.forward(in), 1));
  EXPECT_TRUE(torch::allclose(torch::softmax(ensemble, 1), torch::stack(probs).mean(0), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(probs[0], probs[1]) && torch::allclose(probs[1], probs[2]));
  EXPECT_FALSE(torch::allclose(ensemble, merged));
  peft::set_adamix_mode(*m, peft::AdaMixMode::parse("merged"));
  EXPECT_TRUE(torch::equal(trainable.forward(in), merged));
  EXPECT_EQ(peft::AdaMixMode::parse("ensemble:5").to_string(), "ensemble:5");
}

TEST(AdaMixIo, SaveLoadRoundTripKeepsEveryExpert) {
  for (std::string spec : {"adamix:r=4,share=down,consistency_weight=0.3", "adamix_lora:r=2,share=A"}) {
    auto m = adapted(spec);
    peft::test::perturb(m, 8);
    const fs::path dir = temp_dir("io");
    peft::save_adapter(m, dir.string(), "tiny-bert");
    std::ifstream in(dir / "adapter_config.json");
    auto config = nlohmann::json::parse(in);
    EXPECT_EQ(config["peft_type"], spec.rfind("adamix_lora", 0) == 0 ? "ADAMIX_LORA" : "ADAMIX");
    EXPECT_EQ(config["num_experts"], 4);

    auto loaded = adapted("");
    peft::load_adapter(loaded, dir.string());
    EXPECT_EQ(loaded.methods().front()->config(), m.methods().front()->config());
    auto a = tensors_of(m), b = tensors_of(loaded);
    ASSERT_EQ(a.size(), b.size());
    for (auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k;
    EXPECT_TRUE(torch::equal(eval_forward(m), eval_forward(loaded)));

    // A finalized (merged) mixture saves as one expert and loads as such.
    torch::Tensor merged = eval_forward(m);
    m.finalize();
    peft::save_adapter(m, dir.string(), "tiny-bert");
    auto one = adapted("");
    peft::load_adapter(one, dir.string());
    EXPECT_EQ(one.methods().front()->config()["num_experts"], 1);
    EXPECT_TRUE(torch::allclose(eval_forward(one), merged, 1e-6, 1e-6));
    fs::remove_all(dir);
  }
}

TEST(AdaMixBadInput, ConfigErrorsNameTheKey) {
  expect_error([] { adapted("adamix:num_experts=0"); }, "adamix: num_experts must be >= 1 (got 0)");
  expect_error([] { adapted("adamix_lora:num_experts=-2"); }, "num_experts must be >= 1");
  expect_error([] { adapted("adamix:share=both"); }, "nothing is left to mix");
  expect_error([] { adapted("adamix_lora:share=AB"); }, "nothing is left to mix");
  expect_error([] { adapted("adamix:share=A"); }, "share must be none, up or down");
  expect_error([] { adapted("adamix_lora:share=up"); }, "share must be none, A or B");
  expect_error([] { adapted("adamix:composition=gated"); }, "gated");
  expect_error([] { adapted("adamix:consistency_weight=-1"); }, "consistency_weight must be >= 0");
  expect_error([] { adapted("adamix:consistency_ce=last"); }, "consistency_ce");
  expect_error([] { adapted("adamix:r=0"); }, "r must be > 0");
  expect_error([] { adapted("adamix_lora:target_modules=nothing"); }, "matches no module");
  expect_error([] { adapted("adamix:experts=3"); }, "unknown config key 'experts'");
  expect_error([] { peft::AdaMixMode::parse("ensemble:0"); }, "ensemble:K");
  expect_error([] { peft::AdaMixMode::parse("ensemble"); }, "ensemble:K");
  expect_error([] { peft::AdaMixMode::parse("best"); }, "expected merged, random or ensemble:K");
  auto lora = adapted("lora");
  expect_error([&] { peft::set_adamix_mode(lora, peft::AdaMixMode::parse("random")); }, "no AdaMix method");
}

TEST(AdaMixBadInput, LoadingIntoAnotherShapeOrExpertCountFails) {
  auto m = adapted("adamix:r=4");
  const fs::path dir = temp_dir("shape");
  peft::save_adapter(m, dir.string(), "tiny-bert");

  // A model of another hidden size.
  peft::EncoderConfig cfg = std::dynamic_pointer_cast<peft::SequenceClassifierImpl>(m.model())->config();
  cfg.hidden_size = 16;
  peft::AdaptedModel other{peft::SequenceClassifier(cfg)};
  expect_error([&] { peft::load_adapter(other, dir.string()); }, "adapter made for another base model");
  EXPECT_TRUE(other.methods().empty());

  // The config's expert count disagrees with the file.
  auto edit = [&](int64_t experts) {
    std::ifstream in(dir / "adapter_config.json");
    auto j = nlohmann::json::parse(in);
    j["num_experts"] = experts;
    std::ofstream(dir / "adapter_config.json") << j.dump();
  };
  edit(5);
  auto more = adapted("");
  expect_error([&] { peft::load_adapter(more, dir.string()); }, "adamix_down.4.weight");
  edit(2);
  auto fewer = adapted("");
  expect_error([&] { peft::load_adapter(fewer, dir.string()); }, "match nothing in the model");
  edit(0);
  auto none = adapted("");
  expect_error([&] { peft::load_adapter(none, dir.string()); }, "num_experts must be >= 1");
  fs::remove_all(dir);
}
