// AdaMix from the command line: `peft params` shows training and inference counts; `peft train
// --method adamix` then `peft eval/predict --adamix-mode` in every mode; one-line errors.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli_runner.h"
#include "test_methods_util.h"
#include "test_train_fixture.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

using peft::test::CliRun;
using peft::test::slurp;
using peft::test::run_peft;

}  // namespace

TEST(AdaMixCli, ParamsShowsTrainingAndInferenceCounts) {
  const std::string model = peft::test::tiny_model("tiny-bert").string();
  CliRun r = run_peft(fmt::format("params --model '{}' --method adamix:r=4 --json", model));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const int64_t down = 4 * 32 + 4, up = 32 * 4 + 32, head = 32 * 3 + 3;
  EXPECT_EQ(j["trainable"], 2 * (4 * down + up) + head);
  EXPECT_EQ(j["inference"], 2 * (down + up) + head);
  r = run_peft(fmt::format("params --model '{}' --method adamix:r=4", model));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("inference   "));
}

TEST(AdaMixCli, TrainThenEvaluateInEveryMode) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("peft-adamix-cli-run-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  peft::test::write_synthetic_tsv(dir / "train.tsv", 48, 1);
  peft::test::write_synthetic_tsv(dir / "dev.tsv", 24, 2);
  CliRun r = run_peft(fmt::format(
      "train --model '{}' --task custom --train '{}' --dev '{}' --text-column sentence --method adamix:r=4 "
      "--epochs 1 --batch-size 8 --lr 1e-2 --max-seq-len 32 --out '{}'",
      peft::test::tiny_model_dir().string(), (dir / "train.tsv").string(), (dir / "dev.tsv").string(),
      (dir / "run").string()));
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream config(dir / "run" / "task" / "adapter_config.json");
  EXPECT_EQ(nlohmann::json::parse(config)["peft_type"], "ADAMIX");

  auto eval = [&](const std::string& mode) {
    CliRun e = run_peft(fmt::format("eval '{}' --file '{}' --text-column sentence {}", (dir / "run").string(),
                                    (dir / "dev.tsv").string(), mode.empty() ? "" : "--adamix-mode " + mode));
    EXPECT_EQ(e.status, 0) << mode << ": " << e.err;
    return e.status == 0 ? nlohmann::json::parse(e.out) : nlohmann::json::object();
  };
  auto merged = eval(""), explicit_merged = eval("merged");
  EXPECT_EQ(merged["examples"], 24);
  EXPECT_EQ(merged["loss"], explicit_merged["loss"]);
  auto ensemble = eval("ensemble:3");
  EXPECT_EQ(ensemble["examples"], 24);
  EXPECT_NE(ensemble["loss"], merged["loss"]);
  EXPECT_EQ(eval("random")["examples"], 24);

  CliRun p = run_peft(fmt::format("predict '{}' -i '{}' --text-column sentence --adamix-mode ensemble:2",
                                  (dir / "run").string(), (dir / "dev.tsv").string()));
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(std::count(p.out.begin(), p.out.end(), '\n'), 24);

  CliRun bad = run_peft(fmt::format("eval '{}' --file '{}' --text-column sentence --adamix-mode ensemble:x",
                                    (dir / "run").string(), (dir / "dev.tsv").string()));
  EXPECT_NE(bad.status, 0);
  EXPECT_THAT(bad.err, HasSubstr("ensemble:K"));
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  fs::remove_all(dir);
}
