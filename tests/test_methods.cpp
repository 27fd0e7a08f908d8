// Method framework: target matching, configs (validation, JSON round trip), specs and presets,
// parameter accounting in closed form, freezing, bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/methods/bottleneck.h"
#include "peft/methods/ia3.h"
#include "peft/methods/lora.h"
#include "peft/methods/param_count.h"
#include "peft/methods/prefix.h"
#include "peft/methods/registry.h"
#include "peft/methods/targets.h"
#include "test_methods_util.h"

using peft::test::adapted;
using peft::test::expect_error;
using ::testing::HasSubstr;

namespace {

int64_t trainable(const std::string& spec, const std::string& model = "tiny-bert") {
  auto m = adapted(spec, model);
  return peft::count_parameters(m).trainable;
}

// tiny-bert: hidden d = 32, 2 layers, intermediate 37, 3 labels.
constexpr int64_t d = 32, L = 2, I = 37, head = 32 * 3 + 3;

}  // namespace

TEST(Targets, ListMatchesExactOrLastComponentsLikePeft) {
  auto t = peft::TargetModules::list({"query", "output.dense"});
  EXPECT_TRUE(t.matches("bert.encoder.layer.0.attention.self.query"));
  EXPECT_TRUE(t.matches("query"));
  EXPECT_TRUE(t.matches("bert.encoder.layer.1.attention.output.dense"));
  EXPECT_TRUE(t.matches("bert.encoder.layer.1.output.dense"));
  EXPECT_FALSE(t.matches("bert.encoder.layer.0.attention.self.myquery"));
  EXPECT_FALSE(t.matches("bert.encoder.layer.0.intermediate.dense"));
}

TEST(Targets, StringIsFullMatchRegex) {
  auto t = peft::TargetModules::from_json(R"j(".*layer\\.0\\..*(key|value)")j"_json, "t");
  EXPECT_TRUE(t.matches("bert.encoder.layer.0.attention.self.key"));
  EXPECT_FALSE(t.matches("bert.encoder.layer.1.attention.self.key"));
  EXPECT_FALSE(peft::TargetModules::pattern("key").matches("bert.encoder.layer.0.attention.self.key"));
  EXPECT_EQ(t.to_json(), R"j(".*layer\\.0\\..*(key|value)")j"_json);
}

TEST(Targets, NoMatchListsAvailableNames) {
  expect_error([] { adapted("lora:target_modules=qkv"); }, "matches no module; available: ");
  expect_error([] { adapted("lora:target_modules=qkv"); }, "attention.self.query");
}

TEST(Configs, JsonRoundTrip) {
  peft::LoraConfig lora;
  lora.r = 5, lora.lora_alpha = 3, lora.use_rslora = true, lora.bias = "lora_only";
  lora.target_modules = peft::TargetModules::pattern(".*query");
  EXPECT_EQ(peft::LoraConfig::from_json(lora.to_json()).to_json(), lora.to_json());
  peft::BottleneckConfig b;
  b.placement = "both", b.insertion = "parallel", b.composition = "gated", b.activation = "tanh", b.r = 3;
  EXPECT_EQ(peft::BottleneckConfig::from_json(b.to_json()).to_json(), b.to_json());
  peft::PrefixConfig p;
  p.num_virtual_tokens = 7, p.prefix_projection = true, p.encoder_hidden_size = 9;
  EXPECT_EQ(peft::PrefixConfig::from_json(p.to_json()).to_json(), p.to_json());
  peft::Ia3Config i;
  i.target_modules = peft::TargetModules::list({"key", "intermediate.dense"});
  i.feedforward_modules = peft::TargetModules::list({"intermediate.dense"});
  EXPECT_EQ(peft::Ia3Config::from_json(i.to_json()).to_json(), i.to_json());
  for (auto& type : peft::method_types())  // defaults of every registered method round-trip
    EXPECT_EQ(type.make(type.defaults())->config(), type.defaults()) << type.name;
}

TEST(Configs, InvalidHyperParametersAreOneLineErrors) {
  expect_error([] { adapted("lora:r=0"); }, "lora: r must be > 0");
  expect_error([] { adapted("lora:r=-2"); }, "r must be > 0");
  expect_error([] { adapted("bottleneck:placement=middle"); }, "unknown placement 'middle'");
  expect_error([] { adapted("bottleneck:r=0"); }, "bottleneck: r must be > 0");
  expect_error([] { adapted("bottleneck:composition=mul"); }, "unknown composition");
  expect_error([] { adapted("lora:bias=some"); }, "bias must be none, all or lora_only");
  expect_error([] { adapted("prefix:num_virtual_tokens=64"); }, "leaves no positions");
  expect_error([] { adapted("prefix"); }, "num_virtual_tokens 200");  // the preset's l does not fit a 64-position model
  expect_error([] { adapted("lora:rank=4"); }, "unknown config key 'rank'");
  expect_error([] { adapted("dora"); }, "unknown method 'dora'");
  expect_error([] { adapted("lora:r"); }, "expected KEY=VALUE");
  expect_error([] { adapted("ia3:feedforward_modules=query|key"); }, "not in target_modules");
}

TEST(Specs, PresetsExpandWithPublishedDefaults) {
  auto mam = peft::parse_method_spec("mam");
  ASSERT_EQ(mam.size(), 2u);
  EXPECT_EQ(mam[0].type, "prefix");
  EXPECT_EQ(mam[0].config["num_virtual_tokens"], 30);
  EXPECT_EQ(mam[0].config["encoder_hidden_size"], 800);
  EXPECT_EQ(mam[1].type, "bottleneck");
  EXPECT_EQ(mam[1].config["r"], 512);
  EXPECT_EQ(mam[1].config["scaling"], 4.0);
  EXPECT_EQ(mam[1].config["insertion"], "parallel");
  EXPECT_EQ(peft::parse_method_spec("houlsby")[0].config["placement"], "both");
  EXPECT_EQ(peft::parse_method_spec("pfeiffer")[0].config["placement"], "ffn");
  auto items = peft::parse_method_spec("mam:num_virtual_tokens=3,r=4+bitfit");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].config["num_virtual_tokens"], 3);
  EXPECT_EQ(items[1].config["r"], 4);
  EXPECT_EQ(items[2].type, "bitfit");
  auto lora = peft::parse_method_spec("lora:target_modules=key|value,lora_alpha=2.5")[0].config;
  EXPECT_EQ(lora["target_modules"], R"(["key","value"])"_json);
  EXPECT_EQ(lora["lora_alpha"], 2.5);
  for (auto& name : peft::preset_names()) EXPECT_NO_THROW(peft::make_methods(peft::preset(name))) << name;
}

TEST(ParamCount, ClosedFormCountsOnTinyBert) {
  EXPECT_EQ(trainable("lora:r=4"), L * 2 * 4 * (d + d) + head);
  EXPECT_EQ(trainable("lora:r=4,target_modules=intermediate.dense"), L * 4 * (d + I) + head);
  EXPECT_EQ(trainable("ia3"), L * (d + d + d + I) + head);  // key, value (out), attention.output / output dense (in)
  EXPECT_EQ(trainable("bottleneck:r=8,placement=both"), L * 2 * (2 * d * 8 + 8 + d) + head);
  EXPECT_EQ(trainable("bottleneck:r=8,placement=ffn,composition=gated"), L * (2 * d * 8 + 8 + d + d + 1) + head);
  EXPECT_EQ(trainable("prefix:num_virtual_tokens=5,prefix_projection=false"), 5 * 2 * L * d + head);
  EXPECT_EQ(trainable("prefix:num_virtual_tokens=5,encoder_hidden_size=16"),
            5 * d + (d * 16 + 16) + (16 * 2 * L * d + 2 * L * d) + head);
  EXPECT_EQ(trainable("classifier_only"), head);
  // BitFit: q, k, v, attention dense, attention LN, intermediate, output dense, output LN per layer,
  // plus the embedding LayerNorm and the pooler.
  EXPECT_EQ(trainable("bitfit"), L * (4 * d + d + I + d + d) + d + d + head);
  auto full = adapted("full");
  EXPECT_EQ(peft::count_parameters(full).trainable, full.base_parameter_count());
  EXPECT_EQ(trainable("mam:num_virtual_tokens=5,encoder_hidden_size=16,r=8"),
            5 * d + (d * 16 + 16) + (16 * 2 * L * d + 2 * L * d) + L * (2 * d * 8 + 8 + d) + head);
  // RoBERTa head: dense (d×d + d) + out_proj (d×2 + 2).
  EXPECT_EQ(trainable("lora:r=2", "tiny-roberta"), L * 2 * 2 * (d + d) + d * d + d + d * 2 + 2);
}

TEST(ParamCount, ReportHasPercentAndPerSiteBreakdown) {
  auto m = adapted("lora:r=4");
  auto r = peft::count_parameters(m);
  EXPECT_EQ(r.added, L * 2 * 4 * 2 * d);
  EXPECT_NEAR(r.percent_of_base(), 100.0 * r.trainable / r.base, 1e-12);
  ASSERT_EQ(r.sites.size(), 2u * L + 1);
  EXPECT_EQ(r.sites[0].site, "bert.encoder.layer.0.attention.self.query");
  EXPECT_EQ(r.sites[0].params, 4 * 2 * d);
  EXPECT_EQ(r.sites.back().site, "classifier");
  EXPECT_EQ(r.sites.back().params, head);
}

TEST(Freezing, OnlyMethodTensorsAndHeadRequireGrad) {
  auto m = adapted("lora:r=2+bottleneck:r=3");
  std::set<const void*> expected;
  for (auto& t : m.trainable_tensors()) expected.insert(t.tensor.unsafeGetTensorImpl());
  for (auto& item : m.model()->named_parameters()) {
    const bool want = expected.count(item.value().unsafeGetTensorImpl()) > 0;
    EXPECT_EQ(item.value().requires_grad(), want) << item.key();
    const bool is_method = item.key().find("lora_") != std::string::npos ||
                           item.key().find("adapter_") != std::string::npos || item.key().rfind("classifier.", 0) == 0;
    EXPECT_EQ(want, is_method) << item.key();
  }
}

TEST(Attach, DetachRestoresTheBaseModel) {
  torch::NoGradGuard no_grad;
  auto m = adapted("");
  const auto in = peft::test::tiny_input();
  const torch::Tensor base = m.forward(in);
  const int64_t params = m.model()->parameters().size();
  m.add(peft::make_methods(peft::parse_method_spec("prefix:num_virtual_tokens=3+lora:r=2+houlsby:r=4")));
  peft::test::perturb(m, 1, /*include_head=*/false);
  EXPECT_FALSE(torch::equal(m.forward(in), base));
  m.remove_all();
  EXPECT_TRUE(torch::equal(m.forward(in), base));
  EXPECT_EQ(int64_t(m.model()->parameters().size()), params);
  for (auto& site : m.model()->sites().attention_kv_sites()) EXPECT_EQ(site->virtual_tokens(), 0);
}

TEST(Prefix, FinalizePrecomputesTheTableAndDropsTheMlp) {
  auto m = adapted("prefix:num_virtual_tokens=5,encoder_hidden_size=16");
  peft::test::perturb(m);
  torch::NoGradGuard no_grad;
  const auto in = peft::test::tiny_input();
  const torch::Tensor before = m.forward(in);
  m.finalize();
  EXPECT_TRUE(torch::equal(m.forward(in), before));
  EXPECT_EQ(peft::count_parameters(m).trainable, 5 * 2 * L * d + head);  // only the table (and head) remain
  for (auto& item : m.model()->named_parameters()) EXPECT_EQ(item.key().find("transform"), std::string::npos);
}
