// Real data: LoRA on 2000 SST-2 training sentences (max_seq_len 64, one epoch) must clearly beat the
// majority-class baseline on the full SST-2 dev set. A few minutes at most on 2 CPU cores.
#include <filesystem>

#include <gtest/gtest.h>

#include "peft/data/batching.h"
#include "peft/data/task.h"
#include "peft/methods/spec.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"
#include "peft/train/trainer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace peft;

TEST(TrainRealData, LoraOnSst2SubsetBeatsMajorityBaseline) {
  PEFT_REQUIRE_SHARED_DATA(shared);
  data::DataSource source;
  source.task = "sst2";
  source.data_dir = (shared / "glue" / "SST-2").string();
  const data::Dataset train_set = data::sample(data::load_split(source, "train"), 2000, 1);
  const data::Dataset dev_set = data::load_split(source, "dev");
  const data::TaskInfo task = data::task_info(source, train_set);

  const std::string model_dir = resolve_model_dir("all-MiniLM-L6-v2").string();
  auto tokenizer = tok::load_tokenizer(model_dir);
  torch::manual_seed(42);
  LoadOptions load;
  load.num_labels = 2;
  auto model = std::make_shared<AdaptedModel>(load_sequence_classifier(model_dir, load));
  model->add(make_methods(parse_method_spec("lora:r=8")));
  auto trainable = train::trainable_adapted(model, "all-MiniLM-L6-v2", task.to_json());
  const auto train_tokens = data::tokenize(train_set, *tokenizer, 64);
  const auto dev_tokens = data::tokenize(dev_set, *tokenizer, 64);

  train::TrainOptions o;
  o.epochs = 1;
  o.batch_size = 32;
  o.lr = 2e-3;
  o.warmup_ratio = 0.1;
  o.bucket_window = 20;
  const fs::path run_dir = fs::temp_directory_path() / fmt::format("peft-sst2-{}", ::getpid());
  train::prepare_run_dir(run_dir.string(), o.to_json(), false, true);
  auto r = train::train({&trainable, &train_tokens, &dev_tokens, task.metrics, run_dir.string()}, o);

  const double majority = data::majority_fraction(dev_set);  // 0.509 on SST-2 dev
  const double acc = r.best_metrics.at("accuracy");
  std::cout << fmt::format("[sst2] {} steps, {:.3f} s/step, dev accuracy {:.4f} (majority {:.4f})\n", r.steps,
                           r.seconds_per_step, acc, majority);
  EXPECT_GT(acc, majority + 0.15);
  fs::remove_all(run_dir);
}
