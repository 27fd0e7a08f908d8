// AdaMix in the trainer: the method's loss hook is used (two routed passes + consistency), runs are
// reproducible from the seed, and the saved task evaluates in every mode.
#include <filesystem>
#include <stdexcept>

#include <gtest/gtest.h>

#include "peft/methods/adamix.h"
#include "peft/methods/spec.h"
#include "peft/models/load.h"
#include "peft/tokenize/tokenizer.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"
#include "peft/train/evaluate.h"
#include "peft/train/trainer.h"
#include "test_train_fixture.h"

namespace fs = std::filesystem;
using namespace peft;

namespace {

struct Run {
  std::map<std::string, torch::Tensor> tensors;
  train::TrainResult result;
};

// Trains `spec` on the synthetic task. `crash_at` > 0 throws from the step callback at that step
// (the run folder is kept); `resume` continues the run in the folder.
Run train_adamix(const std::string& spec, uint64_t seed, const std::string& name, int64_t crash_at = 0,
                 bool resume = false, uint64_t init_seed = 0) {
  auto tokenizer = tok::load_tokenizer(test::tiny_model_dir().string());
  auto train_set = data::tokenize(test::synthetic_sentiment(64, 1), *tokenizer, 32);
  auto dev_set = data::tokenize(test::synthetic_sentiment(32, 2), *tokenizer, 32);
  torch::manual_seed(init_seed ? init_seed : seed);
  LoadOptions load;
  load.num_labels = 2;
  auto model = std::make_shared<AdaptedModel>(load_sequence_classifier(test::tiny_model_dir().string(), load));
  model->add(make_methods(parse_method_spec(spec)));
  auto trainable = train::trainable_adapted(model, test::tiny_model_dir().string(), {{"name", "custom"}});
  EXPECT_TRUE(bool(trainable.loss));

  train::TrainOptions o;
  o.epochs = 2;
  o.batch_size = 8;
  o.lr = 1e-2;
  o.log_every = 0;
  o.seed = seed;
  o.eval_every = 4;  // checkpoints every 4 steps
  const fs::path dir = fs::temp_directory_path() / fmt::format("peft-adamix-train-{}-{}", ::getpid(), name);
  if (!resume) fs::remove_all(dir);
  train::prepare_run_dir(dir.string(), o.to_json(), resume, false);
  train::TrainJob job{&trainable, &train_set, &dev_set, {"accuracy"}, dir.string(), resume};
  train::TrainCallbacks cb;
  cb.on_step = [crash_at](const train::StepInfo& s) {
    if (s.step == crash_at) throw std::runtime_error("simulated crash");
  };
  Run run;
  run.result = train::train(job, o, cb);
  for (auto& t : trainable.tensors) run.tensors[t.name] = t.tensor.detach().clone();
  fs::remove_all(dir);
  return run;
}

bool same(const Run& a, const Run& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (auto& [k, t] : a.tensors)
    if (!torch::equal(t, b.tensors.at(k))) return false;
  return true;
}

}  // namespace

TEST(AdaMixTrain, SameSeedSameRunAndExpertsDiverge) {
  const auto a = train_adamix("adamix:r=4", 3, "a"), b = train_adamix("adamix:r=4", 3, "b");
  EXPECT_EQ(a.result.steps, 16);
  EXPECT_TRUE(same(a, b));
  // Experts start equal; only routing (and dropout) separates them, so trained experts differ.
  const std::string site = "base_model.model.bert.encoder.layer.0.output.adamix_down.";
  EXPECT_FALSE(torch::equal(a.tensors.at(site + "0.weight"), a.tensors.at(site + "1.weight")));
  const auto c = train_adamix("adamix:r=4", 4, "c");
  EXPECT_FALSE(same(a, c));
  const auto lora = train_adamix("adamix_lora:r=2,consistency_weight=0", 3, "lora");
  EXPECT_GT(lora.result.steps, 0);
}

// Routes come from the CPU generator the checkpoints save, so a resumed run draws the same routes.
TEST(AdaMixTrain, ResumeAfterCrashMatchesUninterruptedRun) {
  const auto reference = train_adamix("adamix:r=4", 5, "ref");
  EXPECT_THROW(train_adamix("adamix:r=4", 5, "crash", /*crash_at=*/10), std::runtime_error);
  const auto resumed = train_adamix("adamix:r=4", 5, "crash", 0, /*resume=*/true, /*init_seed=*/99);
  EXPECT_TRUE(resumed.result.resumed);
  EXPECT_EQ(resumed.result.steps, 16);
  EXPECT_TRUE(same(reference, resumed));
}
