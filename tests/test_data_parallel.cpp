// Data-parallel training on c10d/Gloo, through the CLI as users run it (`peft train --nproc 2`):
// 2 ranks x batch b end where 1 process x batch 2b ends (LoRA, diff pruning, AdaMix with its
// consistency term), a run whose rank is killed resumes to the uninterrupted run's tensors, and
// bad environments, unreachable peers and dead ranks are one-line errors, never hangs.
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_runner.h"
#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/methods/sparse_diff.h"
#include "peft/train/data_parallel.h"
#include "test_train_fixture.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

using peft::test::CliRun;
using peft::test::slurp;

fs::path work_dir() {
  static const fs::path d = [] {
    fs::path p = fs::temp_directory_path() / fmt::format("peft-data-parallel-{}", ::getpid());
    fs::remove_all(p);
    fs::create_directories(p);
    peft::test::write_synthetic_tsv(p / "train.tsv", 60, 1);  // 60 rows: the last global batch of 16 is partial
    peft::test::write_synthetic_tsv(p / "dev.tsv", 30, 2);
    return p;
  }();
  return d;
}

// The tiny BERT with its dropout off: without dropout, 2 ranks x b and 1 x 2b compute the same step.
fs::path dropout_free_model() {
  static const fs::path d = [] {
    const fs::path src = peft::test::tiny_model_dir(), dst = work_dir() / "tiny-no-dropout";
    fs::create_directories(dst);
    for (const char* f : {"model.safetensors", "vocab.txt"}) fs::copy_file(src / f, dst / f);
    std::ifstream in(src / "config.json");
    auto config = nlohmann::json::parse(in);
    config["hidden_dropout_prob"] = 0.0;
    config["attention_probs_dropout_prob"] = 0.0;
    std::ofstream(dst / "config.json") << config.dump(2);
    return dst;
  }();
  return d;
}

CliRun peft_cli(const std::string& args, const std::string& env = "") { return peft::test::run_peft(args, env); }

std::string train_args(const fs::path& model, const std::string& method, size_t batch, const std::string& out,
                       const std::string& extra = "") {
  const fs::path d = work_dir();
  return fmt::format("train --model '{}' --task custom --train '{}' --dev '{}' --text-column sentence --method '{}' "
                     "--epochs 3 --batch-size {} --lr 5e-3 --eval-every 2 --log-every 1 --seed 7 --max-seq-len 32 "
                     "--out '{}' {} {}",
                     model.string(), (d / "train.tsv").string(), (d / "dev.tsv").string(), method, batch,
                     (d / out).string(), extra, extra.find("--dist-timeout") == std::string::npos ? "--dist-timeout 60" : "");
}

std::map<std::string, torch::Tensor> tensors_of(const fs::path& file) {
  auto f = peft::io::SafetensorsFile::open(file.string());
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : f.names()) out[name] = f.tensor(name).to(torch::kFloat).clone();
  return out;
}

std::map<std::string, torch::Tensor> task_tensors(const std::string& run) {
  const fs::path task = work_dir() / run / "task";
  if (fs::exists(task / "adapter_model.safetensors")) return tensors_of(task / "adapter_model.safetensors");
  // A diff-pruned task: its non-zeros, as dense tensors.
  const peft::SparseDiff diff = peft::read_sparse_diff((task / peft::kDiffFileName).string());
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : diff.tensors) {
    auto dense = torch::zeros({std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<>())});
    dense.index_put_({t.indices}, t.values.to(torch::kFloat));
    out[t.name] = dense;
  }
  for (const auto& [name, t] : diff.head) out[name] = t.to(torch::kFloat);
  return out;
}

// The eval lines of metrics.jsonl, without timings.
std::vector<nlohmann::json> eval_lines(const std::string& run) {
  std::vector<nlohmann::json> out;
  std::istringstream in(slurp(work_dir() / run / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "eval") out.push_back(j);
  }
  return out;
}

void expect_close(const std::map<std::string, torch::Tensor>& got, const std::map<std::string, torch::Tensor>& want,
                  double tolerance) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_LE((got.at(name) - t).abs().max().item<double>(), tolerance) << name;
  }
}

class DataParallelEquivalence : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallelEquivalence, TwoRanksOfBatchBEqualOneProcessOfBatch2B) {
  const std::string method = GetParam();
  const std::string name = method.substr(0, method.find(':'));
  const CliRun one = peft_cli(train_args(dropout_free_model(), method, 16, name + "-1x16"));
  ASSERT_EQ(one.status, 0) << one.err;
  const CliRun two = peft_cli(train_args(dropout_free_model(), method, 8, name + "-2x8", "--nproc 2"));
  ASSERT_EQ(two.status, 0) << two.err;
  EXPECT_THAT(two.out, HasSubstr("2 ranks: "));
  EXPECT_THAT(two.err, HasSubstr("2 ranks x batch 8"));
  // The same number of steps, the same tensors, the same evaluations (within float rounding).
  EXPECT_EQ(one.out.substr(0, one.out.find(" steps")), two.out.substr(0, two.out.find(" steps")));
  expect_close(task_tensors(name + "-2x8"), task_tensors(name + "-1x16"), 2e-5);
  if (name == "lora") {  // the comparison can fail: one process at batch 8 ends elsewhere
    ASSERT_EQ(peft_cli(train_args(dropout_free_model(), method, 8, name + "-1x8")).status, 0);
    const auto other = task_tensors(name + "-1x8"), two_ranks = task_tensors(name + "-2x8");
    double largest = 0;
    for (const auto& [param, t] : other) largest = std::max(largest, (t - two_ranks.at(param)).abs().max().item<double>());
    EXPECT_GT(largest, 1e-3);
  }
  const auto evals_one = eval_lines(name + "-1x16"), evals_two = eval_lines(name + "-2x8");
  ASSERT_EQ(evals_one.size(), evals_two.size());
  ASSERT_FALSE(evals_one.empty());
  for (size_t i = 0; i < evals_one.size(); ++i) {
    EXPECT_EQ(evals_one[i]["step"], evals_two[i]["step"]);
    EXPECT_EQ(evals_one[i]["accuracy"], evals_two[i]["accuracy"]);
    EXPECT_NEAR(evals_one[i]["loss"].get<double>(), evals_two[i]["loss"].get<double>(), 1e-5);
  }
  // Only rank 0 wrote: no stray temporary folders, one metrics log.
  EXPECT_FALSE(fs::exists(work_dir() / (name + "-2x8") / "task.tmp"));
}

INSTANTIATE_TEST_SUITE_P(
    Methods, DataParallelEquivalence,
    ::testing::Values("lora:r=4,lora_dropout=0",
                      "diff_pruning:target_sparsity=0.05,l0_epochs=2,mask_epochs=1",
                      "adamix:r=4,num_experts=3,consistency_weight=1"),
    [](const auto& info) { return info.param.substr(0, info.param.find(':')); });

// A rank killed mid-run stops the other with a clear error (no hang); --resume on 2 ranks then ends
// bit-identical to the uninterrupted 2-rank run, dropout included (each rank's generator is saved).
TEST(DataParallel, KilledRankStopsTheRunAndResumeMatchesTheUninterruptedRun) {
  const fs::path model = peft::test::tiny_model_dir();  // with dropout
  const std::string method = "lora:r=4";
  const CliRun ref = peft_cli(train_args(model, method, 8, "ref", "--nproc 2 --checkpoint-every 3"));
  ASSERT_EQ(ref.status, 0) << ref.err;

  const CliRun killed = peft_cli(train_args(model, method, 8, "killed", "--nproc 2 --checkpoint-every 3"),
                              "PEFT_TEST_KILL_RANK=1 PEFT_TEST_KILL_AT_STEP=5");
  EXPECT_EQ(killed.status, 1);
  EXPECT_THAT(killed.err, HasSubstr("rank 1 of 2 was killed by signal 9"));
  EXPECT_THAT(killed.err, HasSubstr("rank 0 of 2:"));  // the survivor's own one-line error
  EXPECT_EQ(slurp(work_dir() / "killed" / "checkpoints" / "latest"), "step-4\n");  // evaluated at 4

  const CliRun resumed = peft_cli(train_args(model, method, 8, "killed", "--nproc 2 --checkpoint-every 3 --resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_THAT(resumed.out, HasSubstr("(resumed)"));
  const auto want = task_tensors("ref"), got = task_tensors("killed");
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) EXPECT_TRUE(torch::equal(t, got.at(name))) << name;
  const auto evals_ref = eval_lines("ref"), evals_resumed = eval_lines("killed");
  ASSERT_EQ(evals_ref.size(), evals_resumed.size());
  for (size_t i = 0; i < evals_ref.size(); ++i) EXPECT_EQ(evals_ref[i]["loss"], evals_resumed[i]["loss"]) << i;

  // A single-process resume of a 2-rank run is refused (the world size is part of run.json).
  const CliRun alone = peft_cli(train_args(model, method, 8, "killed", "--checkpoint-every 3 --resume"));
  EXPECT_EQ(alone.status, 1);
  EXPECT_THAT(alone.err, HasSubstr("world_size"));
}

TEST(DataParallel, UnreachablePeersAndBadEnvironmentsAreOneLineErrors) {
  const fs::path model = dropout_free_model();
  const std::string args = train_args(model, "lora", 8, "lonely", "--dist-timeout 2");
  // Rank 1 of 2 whose rank 0 never comes: the rendezvous gives up after --dist-timeout.
  CliRun r = peft_cli(args, "WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=1");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("rank 1 of 2: cannot reach the rendezvous store at 127.0.0.1:1"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = peft_cli(args, "WORLD_SIZE=2 RANK=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("RANK=2: expected an integer in [0, 1]"));
  r = peft_cli(args, "WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("MASTER_PORT is not set"));
  EXPECT_FALSE(fs::exists(work_dir() / "lonely"));
}

TEST(DataParallel, EnvironmentContractIsTorchruns) {
  EXPECT_FALSE(peft::train::parallel_env({{"WORLD_SIZE", "1"}}).has_value());
  const auto e = peft::train::parallel_env(
      {{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29400"}});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->master_addr, "node0");
  EXPECT_EQ(e->master_port, 29400);
  EXPECT_THROW(peft::train::parallel_env({{"WORLD_SIZE", "x"}}), peft::Error);
  EXPECT_THROW(peft::train::parallel_env({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}}),
               peft::Error);  // RANK missing
}

}  // namespace
