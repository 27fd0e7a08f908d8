// Diff pruning end to end: two-stage training (library and `peft train`), the sparsity curve in
// metrics.jsonl, the sparse task, `peft diff info|apply|revert` (bit-exact round trip) and bad input.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/methods/registry.h"
#include "peft/methods/sparse_diff.h"
#include "peft/models/load.h"
#include "peft/tokenize/tokenizer.h"
#include "peft/train/adapted.h"
#include "peft/train/diff_pruning.h"
#include "peft/train/evaluate.h"
#include "cli_runner.h"
#include "test_train_fixture.h"
namespace fs = std::filesystem;
using namespace peft;
using ::testing::HasSubstr;

namespace {

using peft::test::CliRun;
using peft::test::slurp;
CliRun peft_cli(const std::string& args) { return peft::test::run_peft(args); }

fs::path fresh(const std::string& name) {
  fs::path d = fs::temp_directory_path() / fmt::format("peft-dp-{}-{}", getpid(), name);
  fs::remove_all(d);
  return d;
}

std::vector<nlohmann::json> lines(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::map<std::string, torch::Tensor> tensors_of(const fs::path& file) {
  auto st = io::SafetensorsFile::open(file.string());
  std::map<std::string, torch::Tensor> out;
  for (auto& n : st.names()) out[n] = st.tensor(n).clone();
  return out;
}

}  // namespace

TEST(DiffPruningTraining, TwoStagesWriteTheCurveProjectionAndSparseTask) {
  auto tokenizer = tok::load_tokenizer(test::tiny_model_dir().string());
  const auto train_set = data::tokenize(test::synthetic_sentiment(64, 1), *tokenizer, 32);
  const auto dev_set = data::tokenize(test::synthetic_sentiment(32, 2), *tokenizer, 32);
  torch::manual_seed(1);
  LoadOptions load;
  load.num_labels = 2;
  auto model = std::make_shared<AdaptedModel>(load_sequence_classifier(test::tiny_model_dir().string(), load));
  model->add(make_method("diff_pruning", {{"target_sparsity", 0.03}, {"l0_epochs", 2}, {"mask_epochs", 1},
                                          {"l0_lambda", 1e-3}, {"value_dtype", "F16"}}));
  train::TrainOptions o;
  o.batch_size = 16;
  o.lr = 1e-2;
  o.log_every = 1;
  const fs::path run = fresh("lib");
  const nlohmann::json task_json{{"task", "custom"}, {"labels", {"0", "1"}}, {"metrics", {"accuracy"}},
                                 {"base_model", test::tiny_model_dir().string()}, {"max_seq_length", 32}};
  train::DiffPruningJob job{model, test::tiny_model_dir().string(), task_json, &train_set, &dev_set, {"accuracy"},
                            run.string(), false};
  const auto r = train::train_diff_pruning(job, o);
  EXPECT_EQ(r.steps, 4);  // stage 2: 4 batches, 1 epoch

  // Stage 1's curve: expected L0 on every train line, falling under the L0 penalty.
  auto curve = lines(run / "l0" / "metrics.jsonl");
  std::vector<double> l0;
  for (auto& j : curve)
    if (j["type"] == "train") l0.push_back(j.at("expected_l0").get<double>());
  ASSERT_EQ(l0.size(), 8u);
  EXPECT_LT(l0.back(), l0.front());
  // The projection: exactly round(0.03 * numel) entries.
  auto projection = nlohmann::json::parse(slurp(run / "projection.json"));
  const int64_t numel = projection["numel"], nnz = projection["nnz"];
  EXPECT_EQ(nnz, std::llround(0.03 * double(numel)));
  for (auto& j : lines(run / "metrics.jsonl"))
    if (j["type"] == "train") EXPECT_EQ(j.at("nnz").get<int64_t>(), nnz);
  // The task: a sparse file, which evaluation loads onto the base.
  const auto diff = read_sparse_diff((fs::path(r.task_dir) / kDiffFileName).string());
  EXPECT_EQ(diff.nnz(), nnz);
  EXPECT_EQ(diff.value_dtype, torch::kHalf);
  EXPECT_FALSE(fs::exists(fs::path(r.task_dir) / "adapter_model.safetensors"));
  auto task = train::load_task(r.task_dir, test::tiny_model_dir().string());
  auto eval = train::evaluate(task.trainable, dev_set, {"accuracy"}, 64, torch::kCPU);
  EXPECT_NEAR(eval.metrics["accuracy"].get<double>(), r.best_metric, 0.04);  // F16 values: near, not equal
}

TEST(DiffPruningCli, TrainApplyRevertRoundTrip) {
  const fs::path dir = fresh("cli");
  fs::create_directories(dir);
  test::write_synthetic_tsv(dir / "train.tsv", 48, 1);
  test::write_synthetic_tsv(dir / "dev.tsv", 16, 2);
  const std::string model = test::tiny_model_dir().string();
  CliRun t = peft_cli(fmt::format(
      "train --task custom --train '{}' --dev '{}' --text-column sentence --model '{}' --batch-size 16 --lr 1e-2 "
      "--method diff_pruning:target_sparsity=0.05,l0_epochs=1,mask_epochs=1,value_dtype=F16 --out '{}'",
      (dir / "train.tsv").string(), (dir / "dev.tsv").string(), model, (dir / "run").string()));
  ASSERT_EQ(t.status, 0) << t.err;
  CliRun info = peft_cli(fmt::format("diff info --json '{}'", (dir / "run").string()));
  ASSERT_EQ(info.status, 0) << info.err;
  const auto s = nlohmann::json::parse(info.out);
  const int64_t nnz = s["nnz"];
  EXPECT_EQ(nnz, std::llround(0.05 * s["numel"].get<double>()));
  EXPECT_EQ(s["value_dtype"], "Half");

  CliRun apply = peft_cli(fmt::format("diff apply --model '{}' --diff '{}' --out '{}'", model, (dir / "run").string(),
                                   (dir / "applied").string()));
  ASSERT_EQ(apply.status, 0) << apply.err;
  CliRun revert = peft_cli(fmt::format("diff revert --model '{}' --out '{}'", (dir / "applied").string(),
                                    (dir / "reverted").string()));
  ASSERT_EQ(revert.status, 0) << revert.err;
  const auto base = tensors_of(fs::path(model) / "model.safetensors");
  const auto applied = tensors_of(dir / "applied" / "model.safetensors");
  const auto reverted = tensors_of(dir / "reverted" / "model.safetensors");
  int64_t changed = 0, compared = 0;
  for (auto& [name, t] : reverted) {
    if (name.rfind("classifier.", 0) == 0) continue;
    ASSERT_TRUE(base.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, base.at(name))) << name;  // bit-exact
    changed += applied.at(name).ne(base.at(name)).sum().item<int64_t>();
    ++compared;
  }
  EXPECT_GT(compared, 10);
  EXPECT_LE(changed, nnz);
  EXPECT_GT(changed, nnz / 2);

  // Reverting twice: the undo record no longer fits (its checksum is the patched model's).
  CliRun again = peft_cli(fmt::format("diff revert --model '{}' --undo '{}' --out '{}'", (dir / "reverted").string(),
                                   (dir / "applied" / "diff_undo.peftdiff").string(), (dir / "again").string()));
  EXPECT_EQ(again.status, 1);
  EXPECT_THAT(again.err, HasSubstr("another base model"));
  EXPECT_FALSE(fs::exists(dir / "again" / "model.safetensors"));
}

TEST(DiffPruningCli, BadInputIsOneLineError) {
  const fs::path dir = fresh("bad");
  fs::create_directories(dir);
  const std::string model = test::tiny_model_dir().string();
  std::ofstream(dir / "junk.peftdiff") << "PEFTDIF1 not really";
  CliRun r = peft_cli(fmt::format("diff apply --model '{}' --diff '{}' --out '{}'", model,
                               (dir / "junk.peftdiff").string(), (dir / "out").string()));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("junk.peftdiff"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_FALSE(fs::exists(dir / "out"));
  test::write_synthetic_tsv(dir / "train.tsv", 16, 1);
  CliRun t = peft_cli(fmt::format("train --task custom --train '{}' --text-column sentence --model '{}' "
                               "--method diff_pruning:target_sparsity=0 --out '{}'",
                               (dir / "train.tsv").string(), model, (dir / "run").string()));
  EXPECT_EQ(t.status, 1);
  EXPECT_THAT(t.err, HasSubstr("target_sparsity must be in (0, 1]"));
}

// The density controller drives stage 1 to the target by itself, where the authors' fixed weight at
// the same starting value leaves the gates open and the projection has to drop almost everything.
TEST(DiffPruningTraining, TargetControlReachesTheDensityThatTheFixedWeightDoesNot) {
  auto tokenizer = tok::load_tokenizer(test::tiny_model_dir().string());
  const auto train_set = data::tokenize(test::synthetic_sentiment(64, 1), *tokenizer, 32);
  const auto dev_set = data::tokenize(test::synthetic_sentiment(32, 2), *tokenizer, 32);
  const nlohmann::json task_json{{"task", "custom"}, {"labels", {"0", "1"}}, {"metrics", {"accuracy"}},
                                 {"base_model", test::tiny_model_dir().string()}, {"max_seq_length", 32}};
  auto stage1 = [&](const std::string& control) {
    torch::manual_seed(1);
    LoadOptions load;
    load.num_labels = 2;
    auto model = std::make_shared<AdaptedModel>(load_sequence_classifier(test::tiny_model_dir().string(), load));
    model->add(make_method("diff_pruning", {{"target_sparsity", 0.05}, {"l0_epochs", 30}, {"mask_epochs", 0},
                                            {"sparsity_control", control}, {"gate_lr", 0.5}, {"controller_rate", 0.3}}));
    train::TrainOptions o;
    o.batch_size = 16;
    o.lr = 1e-2;
    o.log_every = 1;
    const fs::path run = fresh("control-" + control);
    train::DiffPruningJob job{model, test::tiny_model_dir().string(), task_json, &train_set, &dev_set, {"accuracy"},
                              run.string(), false};
    train::train_diff_pruning(job, o);
    auto projection = nlohmann::json::parse(slurp(run / "projection.json"));
    std::vector<nlohmann::json> curve;
    for (auto& j : lines(run / "l0" / "metrics.jsonl"))
      if (j["type"] == "train") curve.push_back(j);
    fs::remove_all(run);
    return std::pair{projection, curve};
  };
  const auto [controlled, curve] = stage1("target");
  ASSERT_EQ(curve.size(), 120u);  // 4 batches x 30 epochs
  const double numel = controlled["numel"];
  // Open gates (deterministic z != 0) before the projection: at most twice the budget, so the
  // projection drops little; the multiplier rose from its start to get there.
  std::string trace;
  for (auto& j : curve) trace += fmt::format("{}:{}/{:.3g} ", j["step"].get<int>(), j["open_gates"].get<int64_t>(), j["l0_lambda"].get<double>());
  EXPECT_LE(controlled["open_gates_before"].get<double>(), 2 * 0.05 * numel) << controlled.dump() << "\n" << trace;
  EXPECT_GT(curve.back()["l0_lambda"].get<double>(), 10 * 1.25e-7);
  EXPECT_DOUBLE_EQ(curve.back()["target_density"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(curve.front()["target_density"].get<double>(), 1.0);  // before the ramp starts
  ASSERT_TRUE(controlled.contains("dev_before") && controlled.contains("dev_after"));
  // The same run with the constant weight: most gates stay open (at least five times the budget).
  const auto [fixed, fixed_curve] = stage1("fixed");
  EXPECT_GT(fixed["open_gates_before"].get<double>(), 5 * 0.05 * numel);
  EXPECT_DOUBLE_EQ(fixed_curve.back()["l0_lambda"].get<double>(), 1.25e-7);
  EXPECT_FALSE(fixed_curve.back().contains("target_density"));
}

// A run that crashes in stage 1 or in stage 2 and is resumed ends with the same sparse task as an
// uninterrupted one: stage 1 continues from its checkpoint (or is restored whole once finished), the
// projection is redone deterministically, and stage 2 continues from its own checkpoint.
TEST(DiffPruningTraining, ResumeAfterACrashInEitherStageMatches) {
  auto tokenizer = tok::load_tokenizer(test::tiny_model_dir().string());
  const auto train_set = data::tokenize(test::synthetic_sentiment(64, 1), *tokenizer, 32);
  const auto dev_set = data::tokenize(test::synthetic_sentiment(32, 2), *tokenizer, 32);
  const nlohmann::json task_json{{"task", "custom"}, {"labels", {"0", "1"}}, {"metrics", {"accuracy"}},
                                 {"base_model", test::tiny_model_dir().string()}, {"max_seq_length", 32}};
  auto run_once = [&](const fs::path& dir, bool resume, int crash_at_call) {
    torch::manual_seed(1);
    LoadOptions load;
    load.num_labels = 2;
    auto model = std::make_shared<AdaptedModel>(load_sequence_classifier(test::tiny_model_dir().string(), load));
    model->add(make_method("diff_pruning", {{"target_sparsity", 0.03}, {"l0_epochs", 2}, {"mask_epochs", 1}, {"l0_lambda", 1e-3}}));
    train::TrainOptions o;
    o.batch_size = 16;
    o.lr = 1e-2;
    o.log_every = 1;
    o.checkpoint_every = 1;
    int calls = 0;
    train::TrainCallbacks cb;
    cb.on_step = [&](const train::StepInfo&) {
      if (++calls == crash_at_call) throw std::runtime_error("simulated crash");
    };
    train::DiffPruningJob job{model, test::tiny_model_dir().string(), task_json, &train_set, &dev_set, {"accuracy"},
                              dir.string(), resume};
    return train::train_diff_pruning(job, o, cb);
  };
  const fs::path whole = fresh("resume-whole");
  const auto expected = run_once(whole, false, -1);
  const auto reference = read_sparse_diff((fs::path(expected.task_dir) / kDiffFileName).string());
  // Stage 1 has 8 steps (4 batches x 2 epochs), stage 2 has 4: crash at stage 1's step 6, stage 2's step 2.
  for (int crash_at : {6, 10}) {
    const fs::path dir = fresh(fmt::format("resume-{}", crash_at));
    EXPECT_THROW(run_once(dir, false, crash_at), std::runtime_error);
    const auto resumed = run_once(dir, true, -1);
    EXPECT_EQ(resumed.steps, expected.steps);
    EXPECT_DOUBLE_EQ(resumed.best_metric, expected.best_metric);
    EXPECT_EQ(slurp(dir / "projection.json"), slurp(whole / "projection.json")) << "crash at call " << crash_at;
    const auto got = read_sparse_diff((fs::path(resumed.task_dir) / kDiffFileName).string());
    ASSERT_EQ(got.tensors.size(), reference.tensors.size());
    for (size_t i = 0; i < got.tensors.size(); ++i) {
      EXPECT_TRUE(torch::equal(got.tensors[i].indices, reference.tensors[i].indices)) << got.tensors[i].name;
      EXPECT_TRUE(torch::equal(got.tensors[i].values, reference.tensors[i].values)) << got.tensors[i].name;
    }
    for (size_t i = 0; i < got.head.size(); ++i)
      EXPECT_TRUE(torch::equal(got.head[i].second, reference.head[i].second)) << got.head[i].first;
    fs::remove_all(dir);
  }
  fs::remove_all(whole);
}
