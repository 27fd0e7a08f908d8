// generate() against HF's generate() on the decoder fixtures (greedy, left-padded batches, eos), the
// logits processors against their definitions, and PEFT decoder adapters (LoRA, IA3, prefix): logits,
// loss and generations equal to PEFT's.
#include <filesystem>

#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/generate/generate.h"
#include "peft/io/safetensors.h"
#include "peft/methods/adapter_io.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"

namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return fs::path(PEFT_SOURCE_DIR) / "tests/fixtures/decoder" / name; }

std::map<std::string, torch::Tensor> expected(const std::string& name) {
  auto file = peft::io::SafetensorsFile::open(fixture(name + ".expected.safetensors").string());
  std::map<std::string, torch::Tensor> out;
  for (auto& n : file.names()) out[n] = file.tensor(n).clone();
  return out;
}

// The prompts of a left-padded (batch, length) fixture, without their padding.
std::vector<std::vector<int64_t>> unpadded_rows(const torch::Tensor& ids, const torch::Tensor& mask) {
  std::vector<std::vector<int64_t>> rows;
  for (int64_t r = 0; r < ids.size(0); ++r) {
    std::vector<int64_t> row;
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (mask[r][t].item<int64_t>() != 0) row.push_back(ids[r][t].item<int64_t>());
    rows.push_back(row);
  }
  return rows;
}

// HF's output rows: new tokens, with pad after a row's eos up to the longest row.
std::vector<std::vector<int64_t>> hf_rows(const torch::Tensor& generated) {
  std::vector<std::vector<int64_t>> rows;
  for (int64_t r = 0; r < generated.size(0); ++r) {
    std::vector<int64_t> row;
    for (int64_t t = 0; t < generated.size(1); ++t) row.push_back(generated[r][t].item<int64_t>());
    rows.push_back(row);
  }
  return rows;
}

// Our rows end at their stop token; pad them as HF does to compare.
std::vector<std::vector<int64_t>> padded_like_hf(std::vector<std::vector<int64_t>> rows, int64_t pad) {
  size_t longest = 0;
  for (auto& r : rows) longest = std::max(longest, r.size());
  for (auto& r : rows) r.resize(longest, pad);
  return rows;
}

peft::GenerationOptions greedy(int64_t max_new_tokens) {
  peft::GenerationOptions o;
  o.max_new_tokens = max_new_tokens;
  o.pad_token_id = 0;
  o.stop_token_ids = {2};
  return o;
}

class GenerateParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateParity, GreedyBatchWithLeftPaddingMatchesTransformers) {
  auto lm = peft::load_causal_lm(fixture(GetParam()).string());
  auto e = expected(GetParam());
  const auto prompts = unpadded_rows(e.at("input_ids"), e.at("attention_mask"));
  const auto result = peft::generate(*lm, prompts, greedy(12));
  EXPECT_EQ(padded_like_hf(result.tokens, 0), hf_rows(e.at("generated")));
  for (int r : {1, 2}) {
    const auto alone = peft::generate(*lm, {prompts[size_t(r)]}, greedy(12));
    EXPECT_EQ(alone.tokens[0], hf_rows(e.at("generated_row" + std::to_string(r) + "_alone"))[0]) << "row " << r;
  }
  const auto long_result = peft::generate(*lm, hf_rows(e.at("long_input_ids")), greedy(20));
  EXPECT_EQ(long_result.tokens[0], hf_rows(e.at("long_generated"))[0]);
}

TEST_P(GenerateParity, StreamsEveryTokenOnce) {
  auto lm = peft::load_causal_lm(fixture(GetParam()).string());
  auto e = expected(GetParam());
  const auto prompts = unpadded_rows(e.at("input_ids"), e.at("attention_mask"));
  std::vector<std::vector<int64_t>> streamed(prompts.size());
  const auto result = peft::generate(*lm, prompts, greedy(5), [&](peft::GenerationStep& step) {
    ASSERT_EQ(step.newest.size(), prompts.size());
    for (size_t r = 0; r < step.newest.size(); ++r)
      if (step.newest[r] >= 0) streamed[r].push_back(step.newest[r]);
  });
  EXPECT_EQ(streamed, result.tokens);
  for (auto& row : result.tokens) EXPECT_EQ(row.size(), 5u);
}

TEST_P(GenerateParity, CallbackEndsARowEarly) {
  auto lm = peft::load_causal_lm(fixture(GetParam()).string());
  auto e = expected(GetParam());
  const auto prompts = unpadded_rows(e.at("input_ids"), e.at("attention_mask"));
  const auto result = peft::generate(*lm, prompts, greedy(6), [&](peft::GenerationStep& step) {
    if (step.newest[1] >= 0) step.finish[1] = true;  // row 1 stops after its first token
  });
  EXPECT_EQ(result.tokens[1].size(), 1u);
  EXPECT_TRUE(result.stopped[1]);
  EXPECT_FALSE(result.stopped[0]);
  // The other rows are unaffected: still HF's tokens.
  const auto hf = hf_rows(e.at("generated"));
  EXPECT_EQ(result.tokens[0], std::vector<int64_t>(hf[0].begin(), hf[0].begin() + 6));
  EXPECT_EQ(result.tokens[1][0], hf[1][0]);
}

TEST(Generate, PromptsBeyondTheContextAreAnErrorAndLengthStopsAtIt) {
  auto lm = peft::load_causal_lm(fixture("tiny-gpt2").string());  // 64 learned positions
  EXPECT_THROW(peft::generate(*lm, {std::vector<int64_t>(65, 7)}, greedy(1)), peft::Error);
  const auto result = peft::generate(*lm, {std::vector<int64_t>(60, 7)}, greedy(10));
  EXPECT_EQ(result.tokens[0].size(), 4u);
  EXPECT_FALSE(result.stopped[0]);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GenerateParity,
                         ::testing::Values("tiny-gpt2", "tiny-llama", "tiny-llama-tied-llama3", "tiny-llama-linear"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s) if (c == '-') c = '_';
                           return s;
                         });

// Adapter fixtures: name -> base model folder.
const std::map<std::string, std::string> kAdapterBase = {
    {"lora-gpt2", "tiny-gpt2"},   {"lora-llama", "tiny-llama"}, {"lora-llama-rslora", "tiny-llama"},
    {"ia3-gpt2", "tiny-gpt2"},    {"ia3-llama", "tiny-llama"},  {"prefix-gpt2", "tiny-gpt2"},
    {"prefix-llama", "tiny-llama"}};

class DecoderAdapterParity : public ::testing::TestWithParam<std::string> {};

double masked_max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  return ((a - b).abs() * mask.unsqueeze(-1).to(a.scalar_type())).max().item<double>();
}

TEST_P(DecoderAdapterParity, PeftAdapterLogitsLossAndGenerationsMatch) {
  auto lm = peft::load_causal_lm(fixture(kAdapterBase.at(GetParam())).string());
  peft::AdaptedModel model(std::static_pointer_cast<peft::Model>(lm));
  peft::load_adapter(model, fixture(GetParam()).string());
  lm->eval();
  auto e = expected(GetParam());
  torch::NoGradGuard no_grad;
  peft::ModelInput in;
  in.input_ids = e.at("input_ids");
  in.attention_mask = e.at("attention_mask");
  const torch::Tensor logits = model.forward(in);
  EXPECT_LT(masked_max_diff(logits, e.at("logits"), e.at("compare_mask")), 1e-4);
  EXPECT_NEAR(model.head().loss(logits, e.at("labels")).item<double>(), e.at("loss").item<double>(), 1e-5);
  in.position_ids = e.at("position_ids_from_mask");
  EXPECT_LT(masked_max_diff(model.forward(in), e.at("logits_mask_positions"), e.at("compare_mask")), 1e-4);

  const auto prompts = unpadded_rows(e.at("input_ids"), e.at("attention_mask"));
  const auto result = peft::generate(model, prompts, greedy(8));
  EXPECT_EQ(padded_like_hf(result.tokens, 0), hf_rows(e.at("generated")));
  for (int r = 0; r < 3; ++r) {
    const auto alone = peft::generate(model, {prompts[size_t(r)]}, greedy(8));
    EXPECT_EQ(alone.tokens[0], hf_rows(e.at("generated_row" + std::to_string(r) + "_alone"))[0]) << "row " << r;
  }
}

TEST_P(DecoderAdapterParity, MergedLoraAndIa3GiveTheSameLogits) {
  auto lm = peft::load_causal_lm(fixture(kAdapterBase.at(GetParam())).string());
  peft::AdaptedModel model(std::static_pointer_cast<peft::Model>(lm));
  peft::load_adapter(model, fixture(GetParam()).string());
  if (!model.mergeable()) GTEST_SKIP() << GetParam() << " has nothing to merge (prefix tuning)";
  lm->eval();
  auto e = expected(GetParam());
  torch::NoGradGuard no_grad;
  peft::ModelInput in;
  in.input_ids = e.at("input_ids");
  in.attention_mask = e.at("attention_mask");
  model.merge();
  EXPECT_LT(masked_max_diff(model.forward(in), e.at("logits"), e.at("compare_mask")), 1e-4);
  model.unmerge();
  EXPECT_LT(masked_max_diff(model.forward(in), e.at("logits"), e.at("compare_mask")), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DecoderAdapterParity,
                         ::testing::Values("lora-gpt2", "lora-llama", "lora-llama-rslora", "ia3-gpt2", "ia3-llama",
                                           "prefix-gpt2", "prefix-llama"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s) if (c == '-') c = '_';
                           return s;
                         });

// The processors, on hand-made logits.
TEST(LogitsProcessors, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  peft::GenerationOptions o;
  o.repetition_penalty = 2.0;
  torch::Tensor logits = torch::tensor({{4.0f, -4.0f, 1.0f}});
  torch::Tensor out = peft::process_logits(logits, torch::tensor({{0, 1}}, torch::kLong), o);
  EXPECT_TRUE(torch::allclose(out, torch::tensor({{2.0f, -8.0f, 1.0f}})));
}

TEST(LogitsProcessors, TopKTopPAndMinPKeepTheExpectedTokens) {
  const float inf = std::numeric_limits<float>::infinity();
  // probabilities 0.5, 0.25, 0.125, 0.125
  torch::Tensor logits = torch::tensor({{0.5f, 0.25f, 0.125f, 0.125f}}).log();
  peft::GenerationOptions o;
  o.do_sample = true;
  o.top_k = 2;
  torch::Tensor k = peft::process_logits(logits, torch::zeros({1, 0}, torch::kLong), o);
  EXPECT_TRUE(std::isfinite(k[0][1].item<float>()));
  EXPECT_EQ(k[0][2].item<float>(), -inf);
  o.top_k = 0;
  o.top_p = 0.7;  // 0.5 alone is below 0.7, 0.5+0.25 reaches it
  torch::Tensor p = peft::process_logits(logits, torch::zeros({1, 0}, torch::kLong), o);
  EXPECT_TRUE(std::isfinite(p[0][1].item<float>()));
  EXPECT_EQ(p[0][2].item<float>(), -inf);
  EXPECT_EQ(p[0][3].item<float>(), -inf);
  o.top_p = 1.0;
  o.min_p = 0.3;  // keeps p >= 0.15
  torch::Tensor m = peft::process_logits(logits, torch::zeros({1, 0}, torch::kLong), o);
  EXPECT_TRUE(std::isfinite(m[0][1].item<float>()));
  EXPECT_EQ(m[0][2].item<float>(), -inf);
}

TEST(Generate, SeededSamplingRepeatsAndRejectsBadOptions) {
  auto lm = peft::load_causal_lm(fixture("tiny-llama").string());
  peft::GenerationOptions o;
  o.max_new_tokens = 6;
  o.do_sample = true;
  o.temperature = 1.5;
  o.top_k = 50;
  o.seed = 7;
  const auto a = peft::generate(*lm, {{5, 6, 7}, {8, 9}}, o);
  const auto b = peft::generate(*lm, {{5, 6, 7}, {8, 9}}, o);
  EXPECT_EQ(a.tokens, b.tokens);
  o.temperature = 0;
  EXPECT_THROW(peft::generate(*lm, {{5}}, o), peft::Error);
  EXPECT_THROW(peft::generate(*lm, {{}}, greedy(3)), peft::Error);
}

}  // namespace
