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
#include "test_methods_util.h"

namespace fs = std::filesystem;
using peft::test::expect_error;

namespace {

const std::vector<std::string> kWords = {
    "the", "a", "movie", "film", "was", "is", "great", "bad", "good", "boring", "fun", "plot", "acting", "and", "but",
    "not", "very", "it", "i", "liked", "hated", "story", "actors", "music", "long", "short", "funny", "sad", "best",
    "worst", "ever", "seen", "of", "to", "in", "this", "that", "with", "for", "on", "at", "by", "an", "be", "are",
    "were", "so", "too", "really", "quite", "well", "made", "end", "scene", "scenes", "time", "way", "much", "more"};

// tiny-bert with a WordPiece vocabulary of its 99 ids, so that tasks take text.
fs::path tiny_bert_with_vocab() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / fmt::format("peft_multi_task_{}_model", ::getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(peft::test::tiny_model("tiny-bert") / f, d / f);
    std::ofstream vocab(d / "vocab.txt");
    std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (char c = 'a'; c <= 'z'; ++c) tokens.push_back(std::string(1, c));
    for (auto& w : kWords) tokens.push_back(w);
    while (tokens.size() < 99) tokens.push_back(fmt::format("[unused{}]", tokens.size()));
    for (auto& t : tokens) vocab << t << "\n";
    return d;
  }();
  return dir;
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("peft_multi_task_{}_{}", ::getpid(), name);
  fs::remove_all(dir);
  return dir;
}

std::vector<std::string> labels_of(int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(fmt::format("label{}", i));
  return out;
}

void write_task_json(const fs::path& dir, int64_t num_labels, const std::string& base) {
  peft::data::TaskInfo info;
  info.name = "custom";
  info.labels = labels_of(num_labels);
  info.metrics = {"accuracy"};
  nlohmann::json j = info.to_json();
  j["base_model"] = base;
  j["max_seq_length"] = 16;
  peft::io::write_file_atomically((dir / "task.json").string(), j.dump(2) + "\n");
}

// A trained-looking task: the method's tensors and the head moved off their initial values.
fs::path make_adapter_task(const std::string& name, const std::string& spec, int64_t num_labels, uint64_t seed) {
  const fs::path model = tiny_bert_with_vocab();
  peft::LoadOptions load;
  load.num_labels = num_labels;
  peft::AdaptedModel m(peft::load_sequence_classifier(model.string(), load));
  m.model()->eval();
  m.add(peft::make_methods(peft::parse_method_spec(spec)));
  peft::test::perturb(m, seed);
  const fs::path dir = temp_dir(name);
  peft::save_adapter(m, dir.string(), model.string());
  write_task_json(dir, num_labels, model.string());
  return dir;
}

// A diff-pruned task: a few hundred random entries of several base tensors, and its own head.
fs::path make_diff_task(const std::string& name, int64_t num_labels, uint64_t seed) {
  const fs::path model = tiny_bert_with_vocab();
  peft::SequenceClassifier base = peft::load_sequence_classifier(model.string());
  peft::SparseDiff diff;
  torch::manual_seed(seed);
  for (auto& item : base->named_parameters()) {
    const std::string& param = item.key();
    const torch::Tensor& p = item.value();
    if (param.rfind("classifier.", 0) == 0) continue;
    if (param.find("embeddings.word") == std::string::npos && param.find("query.weight") == std::string::npos &&
        param.find("LayerNorm.bias") == std::string::npos && param.find("output.dense.bias") == std::string::npos)
      continue;
    peft::TensorDiff t;
    t.name = param;
    t.shape = p.sizes().vec();
    const int64_t nnz = std::max<int64_t>(1, p.numel() / 20);
    t.indices = std::get<0>(torch::randperm(p.numel(), torch::kLong).narrow(0, 0, nnz).sort());
    t.values = torch::randn({nnz}) * 0.2;
    diff.tensors.push_back(t);
  }
  diff.base_checksum = peft::model_checksum(*base, diff);
  diff.head = {{"classifier.weight", torch::randn({num_labels, 32}) * 0.3},
               {"classifier.bias", torch::randn({num_labels}) * 0.1}};
  const fs::path dir = temp_dir(name);
  fs::create_directories(dir);
  peft::write_sparse_diff((dir / peft::kDiffFileName).string(), diff);
  write_task_json(dir, num_labels, model.string());
  return dir;
}

struct TaskCase {
  std::string name, spec;
  int64_t num_labels;
};

// Every method a task can be served with (bitfit and full change the base itself: see the error test).
std::vector<TaskCase> adapter_cases() {
  return {{"lora", "lora:r=4,lora_dropout=0", 2},
          {"rslora", R"s(lora:r=3,use_rslora=true,target_modules=".*(key|dense)",lora_dropout=0)s", 3},
          {"ia3", "ia3", 2},
          {"houlsby", "houlsby:r=4,init=lora", 4},
          {"pfeiffer", "pfeiffer:r=4,activation=tanh,init=lora", 2},
          {"parallel", "parallel:r=4,activation=gelu", 3},
          {"scaled_parallel", "scaled_parallel:r=4,placement=attention,activation=identity", 2},
          {"gated", "bottleneck:r=4,composition=gated,insertion=parallel", 2},
          {"prefix", "prefix:num_virtual_tokens=3,prefix_projection=false", 2},
          {"prefix_mlp", "prefix:num_virtual_tokens=5,encoder_hidden_size=8", 3},
          {"mam", "mam:num_virtual_tokens=4,encoder_hidden_size=8,r=4", 2},
          {"lora_ia3", "lora:r=2,lora_dropout=0+ia3", 2},
          {"adamix", "adamix:num_experts=3,r=4", 2},
          {"adamix_lora", "adamix_lora:num_experts=2,r=2,lora_dropout=0", 3},
          {"classifier_only", "classifier_only", 2}};
}

const std::vector<peft::serve::TextInput> kInputs = {
    {"the movie was great", std::nullopt},
    {"i hated the plot and the acting was bad", std::nullopt},
    {"fun", std::nullopt},
    {"a very long film", std::string("but the music was the best ever")},
    {"worst scene", std::string("it was not funny")},
};

// What `peft predict` computes for one task: load_task, the task's forward, softmax.
std::vector<std::vector<double>> alone(const fs::path& dir, const std::vector<peft::serve::TextInput>& inputs) {
  auto t = peft::train::load_task(dir.string());
  peft::data::Dataset d;
  d.labels = t.task.labels;
  for (auto& in : inputs) d.examples.push_back({in.text, in.pair, std::nullopt, 0});
  const auto tokens = peft::data::tokenize(d, *t.tokenizer, t.max_seq_length);
  std::vector<size_t> all(tokens.size());
  std::iota(all.begin(), all.end(), 0);
  torch::NoGradGuard no_grad;
  const torch::Tensor probs = t.trainable.forward(peft::data::collate(tokens, all).input).softmax(1).to(torch::kDouble);
  std::vector<std::vector<double>> out;
  for (int64_t r = 0; r < probs.size(0); ++r) {
    const torch::Tensor row = probs[r].contiguous();
    out.emplace_back(row.data_ptr<double>(), row.data_ptr<double>() + row.size(0));
  }
  return out;
}

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

  // The loaded task still gives what it gives alone.
  const auto want = alone(dirs()["lora"], {kInputs[0]});
  const auto got = server.classify({{"lora", kInputs[0]}});
  for (size_t k = 0; k < want[0].size(); ++k) EXPECT_NEAR(got[0].probabilities[k], want[0][k], 2e-6);
}

// Decoders: one generation batch whose rows use different adapters (LoRA, IA3, prefix, adapters,
// AdaMix-LoRA, none) gives every row the tokens (and logits) of its adapter alone.
TEST(MultiTaskGeneration, MixedAdaptersInOneBatchGenerateWhatEachGeneratesAlone) {
  const std::vector<std::pair<std::string, std::string>> specs = {
      {"lora", "lora:r=4,lora_dropout=0"},
      {"ia3", "ia3"},
      {"prefix", "prefix:num_virtual_tokens=3,prefix_projection=false"},
      {"prefix2", "prefix:num_virtual_tokens=6,prefix_projection=false"},
      {"pfeiffer", "pfeiffer:r=4,init=lora"},
      {"adamix_lora", "adamix_lora:num_experts=2,r=2,lora_dropout=0"}};
  for (const std::string model_name : {"tiny-llama", "tiny-gpt2"}) {
    SCOPED_TRACE(model_name);
    auto lm = peft::load_causal_lm((peft::test::fixtures_dir() / "decoder" / model_name).string());
    lm->eval();
    torch::manual_seed(3);
    for (auto& [name, spec] : specs)
      for (auto& m : peft::make_methods(peft::parse_method_spec(spec))) {
        m->set_adapter_name(name);
        m->attach(*lm);
        torch::NoGradGuard no_grad;
        for (auto& t : m->tensors()) t.tensor.add_(torch::randn_like(t.tensor) * 0.3);
        m->finalize();
      }
    lm->eval();
    const std::vector<std::vector<int64_t>> prompts = {{5, 9, 17, 3}, {44}, {7, 7, 8, 120, 33, 2, 90}, {11, 12},
                                                       {250, 1, 2}, {60, 61, 62, 63, 64}, {9, 9}};
    const std::vector<std::string> tasks = {"lora", "ia3", "prefix", "", "prefix2", "pfeiffer", "adamix_lora"};
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
    EXPECT_GE(distinct.size(), 5u);
  }
}

}  // namespace
