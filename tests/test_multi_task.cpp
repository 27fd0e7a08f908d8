// Many tasks on one base model: a batch that mixes tasks of every method (and diff-pruned tasks) gives
// each row exactly what its task gives alone, through the ordinary single-task path (load_task, as
// `peft predict` runs it). Also loading/unloading at run time and the errors of bad task folders.
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "peft/data/batching.h"
#include "peft/generate/generate.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/adapter_io.h"
#include "peft/models/decoder.h"
#include "peft/methods/registry.h"
#include "peft/methods/sparse_diff.h"
#include "peft/methods/spec.h"
#include "peft/serve/multi_task.h"
#include "peft/tokenize/tokenizer.h"
#include "peft/train/adapted.h"
#include "multi_task_fixtures.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using peft::test::expect_error;

namespace {

using namespace peft::test;

class MultiTask : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    uint64_t seed = 1;
    for (auto& c : adapter_cases()) dirs()[c.name] = make_adapter_task(c.name, c.spec, c.num_labels, seed++);
    dirs()["diff_a"] = make_diff_task("diff_a", 2, 101);
    dirs()["diff_b"] = make_diff_task("diff_b", 3, 102);
  }
  static std::map<std::string, fs::path>& dirs() {
    static std::map<std::string, fs::path> d;
    return d;
  }
};

TEST_F(MultiTask, MixedBatchOverEveryMethodEqualsEachTaskAlone) {
  peft::serve::MultiTaskModel server(tiny_bert_with_vocab().string());
  for (auto& [name, dir] : dirs()) server.load_task(name, dir.string());
  ASSERT_EQ(server.tasks().size(), dirs().size());

  // Every task's rows interleaved with every other task's, in a shuffled order.
  std::vector<peft::serve::TaskRow> rows;
  for (size_t i = 0; i < kInputs.size(); ++i)
    for (auto& [name, dir] : dirs()) rows.push_back({name, kInputs[(i + rows.size()) % kInputs.size()]});
  std::mt19937 rng(7);
  std::shuffle(rows.begin(), rows.end(), rng);
  const auto mixed = server.classify(rows);
  ASSERT_EQ(mixed.size(), rows.size());

  std::map<std::string, std::vector<std::vector<double>>> expected;
  for (auto& [name, dir] : dirs()) expected[name] = alone(dir, kInputs);
  for (size_t r = 0; r < rows.size(); ++r) {
    const size_t input = static_cast<size_t>(
        std::find_if(kInputs.begin(), kInputs.end(), [&](auto& in) { return in.text == rows[r].input.text; }) -
        kInputs.begin());
    const auto& want = expected[rows[r].task][input];
    ASSERT_EQ(mixed[r].probabilities.size(), want.size()) << rows[r].task;
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(mixed[r].probabilities[k], want[k], 2e-6) << rows[r].task;
    const size_t best = static_cast<size_t>(std::max_element(want.begin(), want.end()) - want.begin());
    EXPECT_EQ(mixed[r].label, fmt::format("label{}", best)) << rows[r].task;
  }
}

TEST_F(MultiTask, EmbeddingsOfBaseRowsAreThePlainEncodersAndTaskRowsTheirTasks) {
  peft::serve::MultiTaskModel server(tiny_bert_with_vocab().string());
  server.load_task("lora", dirs()["lora"].string());
  server.load_task("prefix", dirs()["prefix"].string());
  server.load_task("diff_a", dirs()["diff_a"].string());
  std::vector<peft::serve::TaskRow> rows;
  for (auto& in : kInputs)
    for (const char* task : {"", "lora", "prefix", "diff_a"}) rows.push_back({task, in});
  const auto mixed = server.embed(rows);
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto one = server.embed({rows[r]});
    ASSERT_EQ(one[0].size(), 32u);
    for (size_t k = 0; k < one[0].size(); ++k) EXPECT_NEAR(mixed[r][k], one[0][k], 1e-6) << rows[r].task;
  }
  // Base rows: the encoder without any task.
  peft::serve::MultiTaskModel bare(tiny_bert_with_vocab().string());
  for (size_t r = 0; r < rows.size(); r += 4) {
    const auto plain = bare.embed({rows[r]});
    for (size_t k = 0; k < plain[0].size(); ++k) EXPECT_NEAR(mixed[r][k], plain[0][k], 1e-6);
  }
  // Tasks change the vectors (the test would pass vacuously otherwise).
  float moved = 0;
  for (size_t k = 0; k < 32; ++k) moved += std::abs(mixed[1][k] - mixed[0][k]) + std::abs(mixed[3][k] - mixed[0][k]);
  EXPECT_GT(moved, 1e-3);
}

TEST_F(MultiTask, UnloadingAndReloadingAtRunTimeLeavesTheOthersUnchanged) {
  peft::serve::MultiTaskModel server(tiny_bert_with_vocab().string());
  const int64_t base_bytes = server.base_bytes();
  EXPECT_GT(base_bytes, 0);
  for (const char* name : {"lora", "mam", "diff_a", "adamix"}) server.load_task(name, dirs()[name].string());
  const std::vector<peft::serve::TaskRow> rows = {{"lora", kInputs[0]}, {"diff_a", kInputs[1]}, {"adamix", kInputs[2]}};
  const auto before = server.classify(rows);
  auto mam = server.task("mam");
  ASSERT_TRUE(mam.has_value());
  EXPECT_GT(mam->parameters, 0);
  EXPECT_EQ(mam->bytes, mam->parameters * 4);
  server.unload_task("mam");
  EXPECT_FALSE(server.has_task("mam"));
  expect_error([&] { server.classify({{"mam", kInputs[0]}}); }, "unknown task \"mam\"");
  const auto after = server.classify(rows);
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t k = 0; k < before[r].probabilities.size(); ++k)
      EXPECT_EQ(before[r].probabilities[k], after[r].probabilities[k]);
  // The name can be used again, for another folder.
  server.load_task("mam", dirs()["pfeiffer"].string());
  const auto pf = alone(dirs()["pfeiffer"], {kInputs[3]});
  const auto got = server.classify({{"mam", kInputs[3]}});
  for (size_t k = 0; k < pf[0].size(); ++k) EXPECT_NEAR(got[0].probabilities[k], pf[0][k], 2e-6);
  server.unload_task("diff_a");
  server.unload_task("lora");
  server.unload_task("adamix");
  server.unload_task("mam");
  EXPECT_TRUE(server.tasks().empty());
  // Nothing of the tasks is left in the model: the base vectors are the bare model's.
  peft::serve::MultiTaskModel bare(tiny_bert_with_vocab().string());
  const auto a = server.embed({{"", kInputs[4]}}), b = bare.embed({{"", kInputs[4]}});
  EXPECT_EQ(a[0], b[0]);
}

TEST_F(MultiTask, BadTaskFoldersAreOneLineErrorsAndLeaveTheModelServing) {
  peft::serve::MultiTaskModel server(tiny_bert_with_vocab().string());
  server.load_task("lora", dirs()["lora"].string());
  expect_error([&] { server.load_task("lora", dirs()["ia3"].string()); }, "already loaded");
  expect_error([&] { server.load_task("bad name", dirs()["ia3"].string()); }, "only letters");
  expect_error([&] { server.load_task("x", temp_dir("missing").string()); }, "not a task folder");
  expect_error([&] { server.classify({{"nope", kInputs[0]}}); }, "unknown task \"nope\"");
  expect_error([&] { server.classify({{"", kInputs[0]}}); }, "every input needs a task");

  // BitFit trains the base model's own biases: it cannot share the base.
  const fs::path bitfit = make_adapter_task("bitfit", "bitfit", 2, 9);
  expect_error([&] { server.load_task("bitfit", bitfit.string()); }, "base model's own tensors");
  EXPECT_FALSE(server.has_task("bitfit"));

  // A diff made for another base: the checksum does not match.
  const fs::path other = temp_dir("other_diff");
  fs::copy(dirs()["diff_a"], other);
  peft::SparseDiff d = peft::read_sparse_diff((other / peft::kDiffFileName).string());
  d.base_checksum ^= 1;
  peft::write_sparse_diff((other / peft::kDiffFileName).string(), d);
  expect_error([&] { server.load_task("other", other.string()); }, "another base model");

  // An adapter of another shape (tiny-roberta's layers are named differently).
  const fs::path roberta = temp_dir("roberta_task");
  {
    peft::AdaptedModel m(peft::load_sequence_classifier(peft::test::tiny_model("tiny-roberta").string()));
    m.add(peft::make_methods(peft::parse_method_spec("lora:r=2")));
    peft::save_adapter(m, roberta.string());
    write_task_json(roberta, 3, "tiny-roberta");
  }
  expect_error([&] { server.load_task("roberta", roberta.string()); }, roberta.string());
  EXPECT_FALSE(server.has_task("roberta"));

  // A head whose outputs do not match task.json's labels.
  const fs::path mislabeled = temp_dir("mislabeled");
  fs::copy(dirs()["lora"], mislabeled);
  write_task_json(mislabeled, 5, tiny_bert_with_vocab().string());
  expect_error([&] { server.load_task("mislabeled", mislabeled.string()); }, "2 outputs but task.json lists 5 labels");
  EXPECT_FALSE(server.has_task("mislabeled"));

  // The loaded task still gives what it gives alone.
  const auto want = alone(dirs()["lora"], {kInputs[0]});
  const auto got = server.classify({{"lora", kInputs[0]}});
  for (size_t k = 0; k < want[0].size(); ++k) EXPECT_NEAR(got[0].probabilities[k], want[0][k], 2e-6);
}

// Decoders: one generation batch whose rows use different adapters (LoRA, IA3, prefix, adapters,
// AdaMix-LoRA, none) gives every row the tokens (and logits) of its adapter alone.
TEST(MultiTaskGeneration, MixedAdaptersInOneBatchGenerateWhatEachGeneratesAlone) {
  for (const std::string model_name : {"tiny-llama", "tiny-gpt2"}) {
    SCOPED_TRACE(model_name);
    auto lm = decoder_with_tasks(model_name);
    const std::vector<std::vector<int64_t>> prompts = {{5, 9, 17, 3}, {44}, {7, 7, 8, 120, 33, 2, 90}, {11, 12},
                                                       {250, 1, 2}, {60, 61, 62, 63, 64}, {9, 9}, {13, 14, 15},
                                                       {3, 1, 4, 1, 5}, {77}};
    const std::vector<std::string> tasks = {"lora", "ia3", "prefix", "", "prefix2", "pfeiffer", "adamix_lora",
                                            "lora_b", "lora_c", "lora_b"};
    peft::GenerationOptions o;
    o.max_new_tokens = 8;
    o.row_adapters = tasks;
    const auto mixed = peft::generate(*lm, prompts, o);
    std::set<std::vector<int64_t>> distinct;
    for (size_t r = 0; r < prompts.size(); ++r) {
      peft::GenerationOptions one = o;
      one.row_adapters = {tasks[r]};
      const auto single = peft::generate(*lm, {prompts[r]}, one);
      EXPECT_EQ(mixed.tokens[r], single.tokens[0]) << "row " << r << " task " << tasks[r];
    }
    // The adapters matter: the same prompt under each gives different continuations.
    for (size_t r = 0; r < tasks.size(); ++r) {
      peft::GenerationOptions one = o;
      one.row_adapters = {tasks[r]};
      distinct.insert(peft::generate(*lm, {prompts[0]}, one).tokens[0]);
    }
    EXPECT_GE(distinct.size(), 8u);
  }
}

}  // namespace
