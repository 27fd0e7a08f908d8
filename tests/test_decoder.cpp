// Parity of the GPT-2 / LLaMA decoders with HF transformers (fixtures from scripts/fixtures/make_decoder_fixtures.py).
#include <filesystem>

#include <gtest/gtest.h>

#include "peft/io/safetensors.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"

namespace fs = std::filesystem;

namespace {

fs::path decoder_fixture(const std::string& name) { return fs::path(PEFT_SOURCE_DIR) / "tests/fixtures/decoder" / name; }

std::map<std::string, torch::Tensor> expected(const std::string& name) {
  auto file = peft::io::SafetensorsFile::open(decoder_fixture(name + ".expected.safetensors").string());
  std::map<std::string, torch::Tensor> out;
  for (auto& n : file.names()) out[n] = file.tensor(n).clone();
  return out;
}

// Largest difference where compare_mask is 1 (logits at padding positions mean nothing).
double masked_max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  return ((a - b).abs() * mask.unsqueeze(-1).to(a.scalar_type())).max().item<double>();
}

class DecoderParity : public ::testing::TestWithParam<std::string> {};

TEST_P(DecoderParity, LogitsLossAndPositionsMatchTransformers) {
  auto lm = peft::load_causal_lm(decoder_fixture(GetParam()).string());
  auto e = expected(GetParam());
  torch::NoGradGuard no_grad;
  peft::ModelInput in;
  in.input_ids = e.at("input_ids");
  in.attention_mask = e.at("attention_mask");
  const torch::Tensor logits = lm->forward(in);
  EXPECT_LT(masked_max_diff(logits, e.at("logits"), e.at("compare_mask")), 1e-4);
  EXPECT_NEAR(lm->head().loss(logits, e.at("labels")).item<double>(), e.at("loss").item<double>(), 1e-5);

  in.position_ids = e.at("position_ids_from_mask");
  EXPECT_LT(masked_max_diff(lm->forward(in), e.at("logits_mask_positions"), e.at("compare_mask")), 1e-4);

  peft::ModelInput row0;
  row0.input_ids = e.at("input_ids").narrow(0, 0, 1);
  EXPECT_LT((lm->forward(row0) - e.at("logits_unpadded")).abs().max().item<double>(), 1e-4);
}

// The KV cache gives the logits of a full forward, one token at a time.
TEST_P(DecoderParity, CachedDecodingEqualsFullForward) {
  auto lm = peft::load_causal_lm(decoder_fixture(GetParam()).string());
  auto e = expected(GetParam());
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = e.at("input_ids").narrow(0, 0, 1);
  const int64_t n = ids.size(1);
  peft::ModelInput full;
  full.input_ids = ids;
  const torch::Tensor reference = lm->forward(full);
  const auto& a = lm->arch();
  peft::KVCache cache(a.num_layers, 1, a.num_kv_heads, n, a.head_dim, torch::kFloat);
  peft::ForwardContext context;
  context.cache = &cache;
  peft::ModelInput prompt;
  prompt.input_ids = ids.narrow(1, 0, 4);
  std::vector<torch::Tensor> parts = {lm->forward(prompt, context)};
  for (int64_t t = 4; t < n; ++t) {
    peft::ModelInput step;
    step.input_ids = ids.narrow(1, t, 1);
    parts.push_back(lm->forward(step, context));
  }
  EXPECT_LT((torch::cat(parts, 1) - reference).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DecoderParity,
                         ::testing::Values("tiny-gpt2", "tiny-llama", "tiny-llama-tied-llama3", "tiny-llama-linear"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s) if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
