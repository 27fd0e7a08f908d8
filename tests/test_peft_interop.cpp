// HF PEFT interop, both directions, against the real `peft` package:
//   - adapters saved by PEFT (tests/fixtures/methods, from scripts/fixtures/make_method_fixtures.py)
//     load here and give PEFT's logits within 1e-5;
//   - adapters saved here load in PEFT with the same logits (the fixture script checks them);
//   - merged models written here load in transformers with the same logits.
#include <cstdlib>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/merged_export.h"
#include "peft/models/decoder.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using peft::test::adapted;
using peft::test::fixtures_dir;

namespace {

struct Fixture {
  std::string adapter, base;
};

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("peft_interop_{}_{}", ::getpid(), name);
  fs::remove_all(dir);
  return dir;
}

std::string script() { return (peft::test::source_dir() / "scripts" / "fixtures" / "make_method_fixtures.py").string(); }

int run(const std::string& command) { return std::system((command + " > /dev/null 2>&1").c_str()); }

// Inputs + logits next to an adapter / model written here, for the Python side to compare against.
void write_expected(const fs::path& file, const peft::ModelInput& in, const torch::Tensor& logits) {
  std::vector<std::pair<std::string, torch::Tensor>> t = {
      {"input_ids", in.input_ids}, {"attention_mask", in.attention_mask}, {"logits", logits.detach()}};
  if (in.token_type_ids.defined()) t.emplace_back("token_type_ids", in.token_type_ids);
  peft::io::save_safetensors(file.string(), t);
}

}  // namespace

class PeftSavedAdapter : public ::testing::TestWithParam<Fixture> {};

TEST_P(PeftSavedAdapter, LoadsWithPeftsLogits) {
  torch::NoGradGuard no_grad;
  const fs::path dir = fixtures_dir() / "methods" / GetParam().adapter;
  auto expected = peft::test::read_tensors(dir.string() + ".expected.safetensors");
  auto m = adapted("", GetParam().base);
  peft::load_adapter(m, dir.string());
  peft::ModelInput in{expected["input_ids"], expected["attention_mask"],
                        expected.count("token_type_ids") ? expected["token_type_ids"] : torch::Tensor()};
  EXPECT_LT(max_diff(m.forward(in), expected["logits"]), 1e-5);
  if (m.mergeable()) {  // and the merged model gives the same logits
    m.merge();
    EXPECT_LT(max_diff(m.forward(in), expected["logits"]), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PeftSavedAdapter,
                         ::testing::Values(Fixture{"lora-bert", "tiny-bert"},
                                           Fixture{"lora-roberta-regex", "tiny-roberta"},
                                           Fixture{"lora-bert-bias-all", "tiny-bert"},
                                           Fixture{"lora-bert-bin", "tiny-bert"},
                                           Fixture{"ia3-bert", "tiny-bert"}, Fixture{"ia3-roberta", "tiny-roberta"},
                                           Fixture{"prefix-bert", "tiny-bert"},
                                           Fixture{"prefix-bert-projection", "tiny-bert"}),
                         [](const auto& info) {
                           std::string s = info.param.adapter;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(PeftInterop, AdapterForAnotherBaseModelIsAnError) {
  auto roberta = adapted("", "tiny-roberta");
  EXPECT_THROW(peft::load_adapter(roberta, (fixtures_dir() / "methods" / "lora-bert").string()), peft::Error);
  EXPECT_TRUE(roberta.methods().empty());
  auto regression = adapted("", "tiny-bert-regression");  // 1 label: the saved 3-label head does not fit
  try {
    peft::load_adapter(regression, (fixtures_dir() / "methods" / "ia3-bert").string());
    ADD_FAILURE() << "no error";
  } catch (const peft::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("another base model"));
  }
}

class OursLoadInPeft : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(OursLoadInPeft, SameLogits) {
  PEFT_REQUIRE_PYTHON();
  const auto& [name, spec] = GetParam();
  auto m = adapted(spec);
  peft::test::perturb(m, 11);
  const auto in = peft::test::tiny_input();
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = m.forward(in);
  }
  const fs::path dir = temp_dir(name);
  peft::save_adapter(m, dir.string(), peft::test::tiny_model("tiny-bert").string());
  write_expected(dir / "expected.safetensors", in, logits);
  const std::string cmd = fmt::format("'{}' '{}' check-adapter '{}' '{}'", peft::test::python(), script(), dir.string(),
                                      peft::test::tiny_model("tiny-bert").string());
  EXPECT_EQ(run(cmd), 0) << cmd;
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Methods, OursLoadInPeft,
                         ::testing::Values(std::pair{"lora", "lora:r=4,target_modules=query|key|output.dense"},
                                           std::pair{"lora_rslora_bias", "lora:r=2,use_rslora=true,bias=all"},
                                           std::pair{"ia3", "ia3"},
                                           std::pair{"prefix", "prefix:num_virtual_tokens=4,prefix_projection=false"},
                                           std::pair{"prefix_projection", "prefix:num_virtual_tokens=4,encoder_hidden_size=8"}),
                         [](const auto& info) { return info.param.first; });

// Decoders: adapters saved here load in PEFT on the HF model (GPT-2 Conv1D LoRA with fan_in_fan_out,
// LLaMA LoRA/IA3, prefix with GQA sizes) with the same logits at the real positions.
class OursLoadInPeftDecoder : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(OursLoadInPeftDecoder, SameLogits) {
  PEFT_REQUIRE_PYTHON();
  const auto& [base_name, spec] = GetParam();
  const fs::path base = fixtures_dir() / "decoder" / base_name;
  auto lm = peft::load_causal_lm(base.string());
  peft::AdaptedModel m(std::static_pointer_cast<peft::Model>(lm));
  lm->eval();
  m.add(peft::make_methods(peft::parse_method_spec(spec)));
  peft::test::perturb(m, 13);
  auto t = peft::test::read_tensors(fixtures_dir() / "decoder" / (base_name + ".expected.safetensors"));
  const peft::ModelInput in{t["input_ids"], t["attention_mask"], {}};
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = m.forward(in);
  }
  const fs::path dir = temp_dir("decoder-" + base_name + "-" + std::to_string(std::hash<std::string>{}(spec) % 100000));
  peft::save_adapter(m, dir.string(), base.string());
  write_expected(dir / "expected.safetensors", in, logits);
  const std::string checker = (peft::test::source_dir() / "scripts/fixtures/make_decoder_fixtures.py").string();
  const std::string cmd =
      fmt::format("'{}' '{}' check-adapter '{}' '{}'", peft::test::python(), checker, dir.string(), base.string());
  EXPECT_EQ(run(cmd), 0) << cmd;
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Decoders, OursLoadInPeftDecoder,
    ::testing::Values(std::pair{"tiny-gpt2", "lora:r=4,target_modules=c_attn|c_proj"}, std::pair{"tiny-gpt2", "ia3"},
                      std::pair{"tiny-gpt2", "prefix:num_virtual_tokens=4,prefix_projection=false"},
                      std::pair{"tiny-llama", "lora:r=4,use_rslora=true,target_modules=q_proj|v_proj|down_proj"},
                      std::pair{"tiny-llama", "ia3"},
                      std::pair{"tiny-llama", "prefix:num_virtual_tokens=4,prefix_projection=false"}),
    [](const auto& info) {
      std::string s = info.param.first + "_" + info.param.second.substr(0, info.param.second.find(':'));
      if (info.param.second.find("rslora") != std::string::npos) s += "_rslora";
      for (auto& c : s) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return s;
    });

TEST(PeftInterop, MergedModelLoadsInTransformers) {
  PEFT_REQUIRE_PYTHON();
  auto m = adapted("lora:r=4+ia3");
  peft::test::perturb(m, 5);
  const auto in = peft::test::tiny_input();
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = m.forward(in);
  }
  const fs::path dir = temp_dir("merged");
  peft::save_merged_model(m, peft::test::tiny_model("tiny-bert").string(), dir.string());
  write_expected(dir / "expected.safetensors", in, logits);
  // The in-memory model is unmerged again.
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(m.forward(in), logits, 1e-6, 1e-6));
  const std::string cmd = fmt::format("'{}' '{}' check-merged '{}' '{}'", peft::test::python(), script(), dir.string(),
                                      (dir / "expected.safetensors").string());
  EXPECT_EQ(run(cmd), 0) << cmd;
  // And it loads here as a plain model with the same logits.
  auto merged = peft::load_sequence_classifier(dir.string());
  merged->eval();
  EXPECT_LT(max_diff(merged->forward(in), logits), 1e-5);
  fs::remove_all(dir);
}
