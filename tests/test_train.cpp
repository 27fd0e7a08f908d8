// The trainer on the tiny BERT fixture: learning, determinism, exact resume after a crash, run
// folder rules, NaN handling.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/data/batching.h"
#include "peft/error.h"
#include "peft/models/load.h"
#include "peft/tokenize/tokenizer.h"
#include "peft/train/checkpoint.h"
#include "peft/train/trainer.h"
#include "test_train_fixture.h"

namespace fs = std::filesystem;
using namespace peft;
using ::testing::HasSubstr;

namespace {

using test::tiny_model_dir;

struct Fixture {
  std::unique_ptr<tok::Tokenizer> tokenizer = tok::load_tokenizer(tiny_model_dir().string());
  data::TokenizedDataset train = data::tokenize(test::synthetic_sentiment(96, 1), *tokenizer, 32);
  data::TokenizedDataset dev = data::tokenize(test::synthetic_sentiment(48, 2), *tokenizer, 32);
};

train::TrainableModel make_model(uint64_t seed) {
  torch::manual_seed(seed);
  LoadOptions load;
  load.num_labels = 2;
  // Full fine-tuning: the random tiny encoder needs its embeddings to learn the task's words.
  return train::trainable_base_model(load_sequence_classifier(tiny_model_dir().string(), load).ptr(), {""});
}

train::TrainOptions small_options() {
  train::TrainOptions o;
  o.epochs = 8;
  o.batch_size = 8;
  o.grad_accum = 2;
  o.lr = 5e-3;
  o.warmup_ratio = 0.1;
  o.eval_every = 4;
  o.log_every = 2;
  o.seed = 11;
  return o;
}

fs::path fresh_run_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / fmt::format("peft-run-{}-{}", ::getpid(), name);
  fs::remove_all(d);
  return d;
}

std::map<std::string, torch::Tensor> snapshot(const train::TrainableModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (auto& t : m.tensors) out[t.name] = t.tensor.detach().clone();
  return out;
}

train::TrainResult run(Fixture& f, train::TrainableModel& model, const fs::path& dir, const train::TrainOptions& o,
                       bool resume = false, const train::TrainCallbacks& cb = {}) {
  train::prepare_run_dir(dir.string(), o.to_json(), resume, false);
  train::TrainJob job{&model, &f.train, &f.dev, {"accuracy"}, dir.string(), resume};
  return train::train(job, o, cb);
}

}  // namespace

TEST(Trainer, LearnsAndIsDeterministic) {
  Fixture f;
  auto o = small_options();
  auto m1 = make_model(5), m2 = make_model(5);
  auto r1 = run(f, m1, fresh_run_dir("det1"), o);
  auto r2 = run(f, m2, fresh_run_dir("det2"), o);
  EXPECT_EQ(r1.steps, 48);  // 12 batches / 2 per step * 8 epochs
  // A constant prediction scores 0.71 at most on this dev set; the task is learnable to 1.0.
  EXPECT_GE(r1.best_metric, 0.9) << r1.best_metrics.dump();
  for (auto& [name, t] : snapshot(m1)) EXPECT_TRUE(torch::equal(t, snapshot(m2)[name])) << name;
  EXPECT_TRUE(fs::exists(fs::path(r1.task_dir) / "model.safetensors"));
  EXPECT_TRUE(fs::exists(fs::path(r1.task_dir) / "metrics.json"));
  // metrics.jsonl: train lines every 2 steps, eval lines every 4.
  std::ifstream log(fs::path(r1.task_dir).parent_path() / "metrics.jsonl");
  int train_lines = 0, eval_lines = 0;
  for (std::string line; std::getline(log, line);) {
    auto j = nlohmann::json::parse(line);
    (j["type"] == "train" ? train_lines : eval_lines)++;
  }
  EXPECT_EQ(train_lines, 24);
  EXPECT_EQ(eval_lines, 12);  // steps 4, 8, ..., 48
}

TEST(Trainer, ResumeAfterCrashMatchesUninterruptedRun) {
  Fixture f;
  auto o = small_options();
  auto reference = make_model(5);
  const fs::path ref_dir = fresh_run_dir("ref");
  run(f, reference, ref_dir, o);

  // Crash at step 10: the latest checkpoint is step 8 (mid-epoch 2), two steps are lost.
  const fs::path dir = fresh_run_dir("crash");
  auto crashed = make_model(5);
  train::TrainCallbacks cb;
  cb.on_step = [](const train::StepInfo& s) {
    if (s.step == 10) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(run(f, crashed, dir, o, false, cb), std::runtime_error);
  EXPECT_THAT(train::latest_checkpoint(dir.string()), HasSubstr("step-8"));

  auto resumed = make_model(99);  // a different init: everything trainable comes from the checkpoint
  auto r = run(f, resumed, dir, o, /*resume=*/true);
  EXPECT_TRUE(r.resumed);
  EXPECT_EQ(r.steps, 48);
  for (auto& [name, t] : snapshot(reference)) EXPECT_TRUE(torch::equal(t, snapshot(resumed)[name])) << name;
  // The log reads as one run: no duplicated steps.
  std::ifstream a(ref_dir / "metrics.jsonl"), b(dir / "metrics.jsonl");
  std::vector<int64_t> steps_a, steps_b;
  for (std::string line; std::getline(a, line);) steps_a.push_back(nlohmann::json::parse(line)["step"]);
  for (std::string line; std::getline(b, line);) steps_b.push_back(nlohmann::json::parse(line)["step"]);
  EXPECT_EQ(steps_a, steps_b);
}

TEST(Trainer, RunFolderRules) {
  auto o = small_options();
  const fs::path dir = fresh_run_dir("rules");
  train::prepare_run_dir(dir.string(), o.to_json(), false, false);
  try {
    train::prepare_run_dir(dir.string(), o.to_json(), false, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("already exists (use --overwrite"));
  }
  auto changed = o;
  changed.lr = 1e-3;
  try {
    train::prepare_run_dir(dir.string(), changed.to_json(), true, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("configuration differs"));
    EXPECT_THAT(e.what(), HasSubstr("lr (0.005 vs 0.001)"));
  }
  EXPECT_THROW(train::prepare_run_dir((dir / "nope").string(), o.to_json(), true, false), Error);
  train::prepare_run_dir(dir.string(), changed.to_json(), false, /*overwrite=*/true);
}

TEST(Trainer, NanLossStopsAndKeepsLastCheckpoint) {
  Fixture f;
  auto o = small_options();
  auto model = make_model(5);
  const fs::path dir = fresh_run_dir("nan");
  // Poison the head after the step-4 checkpoint: the next forward yields NaN logits.
  train::TrainCallbacks cb;
  cb.after_checkpoint = [&](int64_t step) {
    torch::NoGradGuard g;
    for (auto& t : model.tensors)
      if (t.name == "classifier.bias") t.tensor.fill_(std::numeric_limits<float>::quiet_NaN());
  };
  try {
    run(f, model, dir, o, false, cb);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("step 5: loss is nan"));
    EXPECT_THAT(e.what(), HasSubstr("step-4"));
  }
  EXPECT_THAT(train::latest_checkpoint(dir.string()), HasSubstr("step-4"));
}
