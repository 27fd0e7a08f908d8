// Parity of the BERT/RoBERTa encoders with HF transformers (fixtures from scripts/fixtures/make_encoder_fixtures.py).
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fstream>
#include <unistd.h>

#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "test_util.h"

namespace fs = std::filesystem;
using peft::test::fixtures_dir;

namespace {

fs::path encoder_fixture(const std::string& name) { return fixtures_dir() / "encoder" / name; }

std::map<std::string, torch::Tensor> read_all(const fs::path& file) {
  auto st = peft::io::SafetensorsFile::open(file.string());
  std::map<std::string, torch::Tensor> out;
  for (auto& n : st.names()) out[n] = st.tensor(n);
  return out;
}

peft::ModelInput input_of(std::map<std::string, torch::Tensor>& t) {
  return {t["input_ids"], t["attention_mask"], t.count("token_type_ids") ? t["token_type_ids"] : torch::Tensor()};
}

// Largest absolute difference, only over rows the mask marks as real tokens when given.
double max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask = {}) {
  EXPECT_EQ(a.sizes(), b.sizes());
  torch::Tensor d = (a - b).abs();
  if (mask.defined()) d = d * mask.unsqueeze(-1).to(d.scalar_type());
  return d.max().item<double>();
}

bool minilm_available() {
  try {
    peft::resolve_model_dir("all-MiniLM-L6-v2");
    return true;
  } catch (const peft::Error&) {
    return false;
  }
}

}  // namespace

class EncoderParity : public ::testing::TestWithParam<std::string> {};

TEST_P(EncoderParity, LogitsHiddenStatesAndPooledMatchTransformers) {
  torch::NoGradGuard no_grad;
  const std::string name = GetParam();
  auto expected = read_all(encoder_fixture(name + ".expected.safetensors"));
  peft::SequenceClassifier model = peft::load_sequence_classifier(encoder_fixture(name).string());
  peft::ModelInput in = input_of(expected);

  EXPECT_LT(max_diff(model->forward(in), expected["logits"]), 1e-5);
  peft::EncoderOutput out = model->encoder->forward(in);
  EXPECT_LT(max_diff(out.last_hidden_state, expected["last_hidden_state"], expected["attention_mask"]), 1e-5);
  if (expected.count("pooled")) EXPECT_LT(max_diff(out.pooled, expected["pooled"]), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, EncoderParity,
                         ::testing::Values("tiny-bert", "tiny-bert-regression", "tiny-roberta"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(EncoderLoad, BareBertModelFileLoadsWithoutPrefix) {
  torch::NoGradGuard no_grad;
  auto expected = read_all(encoder_fixture("tiny-bert-bare.expected.safetensors"));
  peft::EncoderModel model = peft::load_encoder_model(encoder_fixture("tiny-bert-bare").string());
  peft::EncoderOutput out = model->forward(input_of(expected));
  EXPECT_LT(max_diff(out.last_hidden_state, expected["last_hidden_state"], expected["attention_mask"]), 1e-5);
  EXPECT_LT(max_diff(out.pooled, expected["pooled"]), 1e-5);
}

TEST(EncoderLoad, ClassifierOnBareCheckpointIsInitialisedAndReported) {
  peft::LoadReport report;
  peft::load_sequence_classifier(encoder_fixture("tiny-bert-bare").string(), {}, &report);
  EXPECT_THAT(report.initialised, ::testing::UnorderedElementsAre("classifier.weight", "classifier.bias"));
}

TEST(EncoderLoad, NumLabelsOverrideReinitialisesOnlyTheHead) {
  peft::LoadOptions options;
  options.num_labels = 5;
  peft::LoadReport report;
  auto model = peft::load_sequence_classifier(encoder_fixture("tiny-bert").string(), options, &report);
  EXPECT_EQ(model->classifier->weight.size(0), 5);
  EXPECT_THAT(report.initialised, ::testing::UnorderedElementsAre("classifier.weight", "classifier.bias"));
}

TEST(EncoderLoad, TrainModeUsesDropoutEvalModeIsDeterministic) {
  auto expected = read_all(encoder_fixture("tiny-bert.expected.safetensors"));
  auto model = peft::load_sequence_classifier(encoder_fixture("tiny-bert").string());
  model->train();
  torch::manual_seed(0);
  auto a = model->forward(input_of(expected));
  auto b = model->forward(input_of(expected));
  EXPECT_GT((a - b).abs().max().item<double>(), 0.0);
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(input_of(expected)), model->forward(input_of(expected))));
}

TEST(EncoderLoad, TooLongInputIsAClearError) {
  auto model = peft::load_sequence_classifier(encoder_fixture("tiny-bert").string());
  auto ids = torch::ones({1, 65}, torch::kLong);
  EXPECT_THAT([&] { model->forward({ids, {}, {}}); },
              ::testing::ThrowsMessage<peft::Error>(::testing::HasSubstr("max_position_embeddings")));
}

TEST(MiniLM, EmbeddingsHiddenStatesAndLogitsMatchTransformersOn128GlueSentences) {
  if (!minilm_available()) {
    if (peft::test::in_ci()) FAIL() << "all-MiniLM-L6-v2 package not installed (scripts/setup.sh installs it)";
    GTEST_SKIP() << "all-MiniLM-L6-v2 not installed";
  }
  torch::NoGradGuard no_grad;
  auto expected = read_all(encoder_fixture("minilm-glue.expected.safetensors"));
  auto model = peft::load_sequence_classifier("all-MiniLM-L6-v2");
  model->classifier->weight.copy_(expected["classifier.weight"]);
  model->classifier->bias.copy_(expected["classifier.bias"]);
  peft::ModelInput in = input_of(expected);
  ASSERT_GE(in.input_ids.size(0), 100);

  peft::EncoderOutput out = model->encoder->forward(in);
  EXPECT_LT(max_diff(peft::mean_pool(out.last_hidden_state, in.attention_mask), expected["embeddings"]), 1e-5);
  EXPECT_LT(max_diff(out.pooled, expected["pooled"]), 1e-5);
  EXPECT_LT(max_diff(out.last_hidden_state.slice(0, 0, 4), expected["last_hidden_state_first4"],
                     in.attention_mask.slice(0, 0, 4)),
            1e-5);
  EXPECT_LT(max_diff(model->forward(in), expected["logits"]), 1e-5);
}

// ---- bad input: each names the file (and tensor) at fault --------------------------------------

class BadCheckpoint : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / fmt::format("peft-bad-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy(encoder_fixture("tiny-bert"), dir, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir); }

  void rewrite_weights(const std::function<void(std::vector<std::pair<std::string, torch::Tensor>>&)>& edit) {
    auto st = peft::io::SafetensorsFile::open((dir / "model.safetensors").string());
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (auto& n : st.names()) tensors.emplace_back(n, st.tensor(n).clone());
    edit(tensors);
    peft::io::save_safetensors((dir / "model.safetensors").string(), tensors);
  }
  std::string load_error() {
    try {
      peft::load_sequence_classifier(dir.string());
    } catch (const peft::Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(BadCheckpoint, MissingTensorIsNamed) {
  rewrite_weights([](auto& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](auto& p) { return p.first == "bert.encoder.layer.1.output.dense.weight"; }),
            t.end());
  });
  EXPECT_THAT(load_error(), ::testing::AllOf(::testing::HasSubstr("model.safetensors"),
                                            ::testing::HasSubstr("encoder.layer.1.output.dense.weight")));
}

TEST_F(BadCheckpoint, ShapeMismatchBetweenConfigAndWeightsIsNamed) {
  rewrite_weights([](auto& t) {
    for (auto& p : t)
      if (p.first == "bert.encoder.layer.0.intermediate.dense.weight") p.second = torch::zeros({36, 32});
  });
  EXPECT_THAT(load_error(), ::testing::AllOf(::testing::HasSubstr("intermediate.dense.weight"),
                                            ::testing::HasSubstr("[36, 32]"), ::testing::HasSubstr("[37, 32]")));
}

TEST_F(BadCheckpoint, UnknownArchitectureIsNamed) {
  std::ofstream(dir / "config.json") << R"({"model_type": "t5", "hidden_size": 32})";
  EXPECT_THAT(load_error(), ::testing::AllOf(::testing::HasSubstr("config.json"), ::testing::HasSubstr("t5")));
}

TEST_F(BadCheckpoint, TruncatedWeightsFileIsNamed) {
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") / 2);
  EXPECT_THAT(load_error(), ::testing::HasSubstr("model.safetensors"));
}

TEST_F(BadCheckpoint, MissingWeightsFileIsNamed) {
  fs::remove(dir / "model.safetensors");
  EXPECT_THAT(load_error(), ::testing::HasSubstr("no weights found"));
}

TEST(ModelDir, UnknownNameListsWhatWasTried) {
  EXPECT_THAT([] { peft::resolve_model_dir("no-such-model-xyz"); },
              ::testing::ThrowsMessage<peft::Error>(::testing::HasSubstr("gt_no_such_model_xyz")));
}
