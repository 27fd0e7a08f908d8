// `peft params` and `peft merge` as a user runs them: outputs, closed-form counts, one-line errors.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli_runner.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

using peft::test::CliRun;
using peft::test::slurp;
using peft::test::run_peft;

std::string tiny(const std::string& name = "tiny-bert") { return peft::test::tiny_model(name).string(); }

void expect_one_line_error(const CliRun& r, const std::string& part) {
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr(part));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace

TEST(ParamsCommand, JsonCountsMatchClosedForm) {
  CliRun r = run_peft(fmt::format("params --model '{}' --method lora:r=4 --json", tiny()));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["trainable"], 2 * 2 * 4 * 64 + 99);  // 2 layers x {query, value} x r(in + out) + head
  EXPECT_EQ(j["sites"].size(), 5u);
  EXPECT_GT(j["base"].get<int64_t>(), 0);
}

TEST(ParamsCommand, TextReportWithPerSiteBreakdown) {
  CliRun r = run_peft(fmt::format("params --model '{}' --method 'mam:num_virtual_tokens=4,encoder_hidden_size=8,r=16'", tiny()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("% of base"));
  EXPECT_THAT(r.out, HasSubstr("prompt_encoder"));
  EXPECT_THAT(r.out, HasSubstr("bert.encoder.layer.1.output "));
}

TEST(ParamsCommand, MethodConfigFile) {
  const fs::path file = fs::temp_directory_path() / fmt::format("peft-method-config-{}.json", getpid());
  std::ofstream(file) << R"({"methods": [{"type": "lora", "r": 2, "target_modules": ".*key"}, {"type": "bitfit"}]})";
  CliRun r = run_peft(fmt::format("params --model '{}' --method-config '{}' --json", tiny(), file.string()));
  fs::remove(file);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["methods"].size(), 2u);
}

TEST(ParamsCommand, BadInputIsOneLineError) {
  expect_one_line_error(run_peft(fmt::format("params --model '{}' --method lora:r=0", tiny())), "r must be > 0");
  expect_one_line_error(run_peft(fmt::format("params --model '{}' --method lora:target_modules=nope", tiny())),
                        "available:");
  expect_one_line_error(run_peft(fmt::format("params --model '{}' --method bottleneck:placement=top", tiny())),
                        "unknown placement");
  expect_one_line_error(run_peft(fmt::format("params --model '{}' --method prefix:num_virtual_tokens=100", tiny())),
                        "max_position_embeddings");
}

TEST(MergeCommand, WritesAModelThatLoads) {
  const fs::path out = fs::temp_directory_path() / fmt::format("peft-merged-{}", getpid());
  fs::remove_all(out);
  const std::string adapter = (peft::test::fixtures_dir() / "methods" / "lora-bert").string();
  CliRun r = run_peft(fmt::format("merge --model '{}' --adapter '{}' --out '{}'", tiny(), adapter, out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "config.json"));
  // The merged model alone gives PEFT's logits for the adapter.
  auto expected = peft::test::read_tensors(adapter + ".expected.safetensors");
  auto merged = peft::load_sequence_classifier(out.string());
  merged->eval();
  torch::NoGradGuard no_grad;
  auto logits = merged->forward({expected["input_ids"], expected["attention_mask"], expected["token_type_ids"]});
  EXPECT_LT((logits - expected["logits"]).abs().max().item<double>(), 1e-5);
  fs::remove_all(out);
}

TEST(MergeCommand, UnmergeableAdapterAndWrongBaseAreErrors) {
  const fs::path out = fs::temp_directory_path() / fmt::format("peft-merged-bad-{}", getpid());
  const std::string prefix = (peft::test::fixtures_dir() / "methods" / "prefix-bert").string();
  expect_one_line_error(run_peft(fmt::format("merge --model '{}' --adapter '{}' --out '{}'", tiny(), prefix, out.string())),
                        "cannot merge");
  const std::string lora = (peft::test::fixtures_dir() / "methods" / "lora-bert").string();
  expect_one_line_error(
      run_peft(fmt::format("merge --model '{}' --adapter '{}' --out '{}'", tiny("tiny-roberta"), lora, out.string())),
      "adapter");
  fs::remove_all(out);
}
