// `peft train / eval / predict / report` as a user runs them, on the tiny BERT fixture; a run killed
// with SIGKILL (mid-training and mid-checkpoint) and resumed ends exactly like an uninterrupted one.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/io/safetensors.h"
#include "test_train_fixture.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

struct CliRun {
  int status;  // exit code, or -signal
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path work_dir() {
  static const fs::path d = [] {
    fs::path p = fs::temp_directory_path() / fmt::format("peft-train-cli-{}", ::getpid());
    fs::remove_all(p);
    fs::create_directories(p);
    peft::test::write_synthetic_tsv(p / "train.tsv", 96, 1);
    peft::test::write_synthetic_tsv(p / "dev.tsv", 48, 2);
    return p;
  }();
  return d;
}

CliRun peft_cli(const std::string& args, const std::string& input = "", const std::string& env = "") {
  const fs::path dir = work_dir();
  std::ofstream(dir / "stdin") << input;
  const std::string cmd = fmt::format("{} '{}' {} < '{}' > '{}' 2> '{}'", env, PEFT_CLI_PATH, args, (dir / "stdin").string(),
                                      (dir / "stdout").string(), (dir / "stderr").string());
  const int raw = std::system(cmd.c_str());
  int status = WIFEXITED(raw) ? WEXITSTATUS(raw) : WIFSIGNALED(raw) ? -WTERMSIG(raw) : -100;
  if (WIFEXITED(raw) && WEXITSTATUS(raw) > 128) status = -(WEXITSTATUS(raw) - 128);  // the shell reports a killed child
  return {status, slurp(dir / "stdout"), slurp(dir / "stderr")};
}

// 96 examples, batches of 8, 2 per step: 6 steps per epoch, 48 in all (the tiny model learns the task by ~25).
std::string train_args(const std::string& out, const std::string& extra = "", const std::string& lr = "5e-3") {
  const fs::path d = work_dir();
  return fmt::format("train --model '{}' --task custom --train '{}' --dev '{}' --text-column sentence --method full "
                     "--epochs 8 --batch-size 8 --grad-accum 2 --lr {} --eval-every 4 --log-every 2 --seed 3 "
                     "--max-seq-len 32 --out '{}' {}",
                     peft::test::tiny_model_dir().string(), (d / "train.tsv").string(), (d / "dev.tsv").string(), lr,
                     (d / out).string(), extra);
}

std::map<std::string, torch::Tensor> task_tensors(const std::string& run) {
  auto file = peft::io::SafetensorsFile::open((work_dir() / run / "task" / "adapter_model.safetensors").string());
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : file.names()) out[name] = file.tensor(name).clone();
  return out;
}

std::vector<std::string> eval_lines(const std::string& run) {
  std::vector<std::string> out;
  std::istringstream in(slurp(work_dir() / run / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    j.erase("elapsed_s");
    out.push_back(j.dump());
  }
  return out;
}

}  // namespace

TEST(TrainCli, TrainPredictEvalReport) {
  CliRun r = peft_cli(train_args("run"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("48 steps"));
  EXPECT_THAT(r.out, HasSubstr("task saved to"));
  EXPECT_THAT(r.err, HasSubstr("step 48/48"));  // not a terminal: plain progress lines
  for (const char* f : {"run.json", "metrics.jsonl", "results.json", "task/adapter_model.safetensors",
                        "task/adapter_config.json", "task/task.json", "checkpoints/latest"})
    EXPECT_TRUE(fs::exists(work_dir() / "run" / f)) << f;

  // An existing run folder is never overwritten by accident; --resume must match the configuration.
  CliRun again = peft_cli(train_args("run"));
  EXPECT_EQ(again.status, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists (use --overwrite"));
  EXPECT_EQ(std::count(again.err.begin(), again.err.end(), '\n'), 1);
  CliRun changed = peft_cli(train_args("run", "--resume", "1e-3"));
  EXPECT_EQ(changed.status, 1);
  EXPECT_THAT(changed.err, HasSubstr("configuration differs"));

  CliRun pred = peft_cli(fmt::format("predict '{}'", (work_dir() / "run").string()), "the plot was great\nvery awful\n");
  ASSERT_EQ(pred.status, 0) << pred.err;
  std::istringstream lines(pred.out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_EQ(nlohmann::json::parse(first)["label"], "pos") << pred.out;
  EXPECT_EQ(nlohmann::json::parse(second)["label"], "neg") << pred.out;
  const double p_pos = nlohmann::json::parse(first)["probabilities"]["pos"];
  EXPECT_GT(p_pos, 0.5);

  CliRun tsv = peft_cli(fmt::format("predict '{}' --input '{}' --text-column sentence --format tsv",
                                 (work_dir() / "run").string(), (work_dir() / "dev.tsv").string()));
  ASSERT_EQ(tsv.status, 0) << tsv.err;
  EXPECT_THAT(tsv.out, HasSubstr("index\tlabel\tp_neg\tp_pos\n"));

  CliRun ev = peft_cli(fmt::format("eval '{}' --file '{}' --text-column sentence", (work_dir() / "run").string(),
                                (work_dir() / "dev.tsv").string()));
  ASSERT_EQ(ev.status, 0) << ev.err;
  auto metrics = nlohmann::json::parse(ev.out);
  EXPECT_GT(metrics["accuracy"].get<double>(), 0.85);
  EXPECT_TRUE(metrics.contains("f1"));

  CliRun rep = peft_cli(fmt::format("report '{}'", (work_dir() / "run").string()));
  ASSERT_EQ(rep.status, 0) << rep.err;
  EXPECT_THAT(rep.out, HasSubstr("<- best"));
  EXPECT_THAT(slurp(work_dir() / "run" / "report.svg"), HasSubstr("<polyline"));
}

TEST(TrainCli, BadDataIsOneLineErrorWithFileAndLine) {
  std::ofstream(work_dir() / "bad.tsv") << "sentence\tlabel\ngood one\tpos\nbad one\tmaybe\n";
  CliRun r = peft_cli(fmt::format("train --model '{}' --task custom --train '{}' --dev '{}' --labels neg,pos "
                               "--text-column sentence --method full --out '{}'",
                               peft::test::tiny_model_dir().string(), (work_dir() / "bad.tsv").string(),
                               (work_dir() / "bad.tsv").string(), (work_dir() / "bad-run").string()));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("bad.tsv:3: label 'maybe' is not in the label map (neg, pos)"));
  EXPECT_FALSE(fs::exists(work_dir() / "bad-run"));  // nothing created before the data is checked
}

TEST(TrainCli, SigkillMidTrainingAndMidCheckpointThenResumeMatches) {
  CliRun ref = peft_cli(train_args("ref"));
  ASSERT_EQ(ref.status, 0) << ref.err;

  // Killed at step 10 (latest checkpoint: step 8), resumed.
  CliRun killed = peft_cli(train_args("killed"), "", "PEFT_TEST_KILL_AT_STEP=10");
  EXPECT_EQ(killed.status, -9) << killed.err;
  CliRun resumed = peft_cli(train_args("killed", "--resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_THAT(resumed.out, HasSubstr("(resumed)"));

  // Killed while writing the step-12 checkpoint: resume falls back to step 8.
  CliRun torn = peft_cli(train_args("torn"), "", "PEFT_TEST_KILL_IN_CHECKPOINT=12");
  EXPECT_EQ(torn.status, -9) << torn.err;
  EXPECT_EQ(slurp(work_dir() / "torn" / "checkpoints" / "latest"), "step-8\n");
  CliRun torn_resumed = peft_cli(train_args("torn", "--resume"));
  ASSERT_EQ(torn_resumed.status, 0) << torn_resumed.err;

  const auto want = task_tensors("ref");
  for (const char* run : {"killed", "torn"}) {
    const auto got = task_tensors(run);
    ASSERT_EQ(got.size(), want.size()) << run;
    for (const auto& [name, t] : want) EXPECT_TRUE(torch::equal(t, got.at(name))) << run << " " << name;
    EXPECT_EQ(eval_lines(run), eval_lines("ref")) << run;
  }
}

// The README's quickstart, shortened to two epochs: the installed MiniLM learns the demo reviews.
TEST(TrainCli, QuickstartLearnsDemoReviews) {
  const fs::path out = work_dir() / "quickstart";
  CliRun r = peft_cli(fmt::format("quickstart --epochs 2 --data '{}/examples/demo' --out '{}'", PEFT_SOURCE_DIR,
                                  out.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  auto percent_after = [&](const std::string& label) {
    const size_t at = r.out.find(label);
    EXPECT_NE(at, std::string::npos) << r.out;
    return at == std::string::npos ? 0.0 : std::stod(r.out.substr(at + label.size()));
  };
  const double before = percent_after("Dev accuracy before training: ");
  const double after = percent_after("Dev accuracy after training:  ");
  EXPECT_GT(after, 75.0) << r.out;
  EXPECT_GT(after, before + 10.0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("Trainable parameters: "));
  EXPECT_TRUE(fs::exists(out / "task" / "adapter_model.safetensors"));
}

// A file-size limit (as a full disk) while writing: one line naming the file, exit 1, no temporary
// or half-written files; the limit is per file, so the model's task file fails first at 60 KB and
// the optimizer state of a checkpoint at 200 KB.
TEST(TrainCli, WriteFailuresAreOneLineErrorsAndLeaveNoPartialFiles) {
  for (const int kb : {60, 200}) {
    const std::string run = fmt::format("limited-{}", kb);
    CliRun r = peft_cli(train_args(run), "", fmt::format("ulimit -f {};", kb));
    EXPECT_EQ(r.status, 1) << r.err;
    const std::string last_line = r.err.substr(r.err.rfind("peft: error:"));
    EXPECT_THAT(last_line, HasSubstr("File too large")) << r.err;
    if (kb == 200) EXPECT_THAT(last_line, HasSubstr("checkpoint not saved")) << r.err;
    EXPECT_EQ(std::count(last_line.begin(), last_line.end(), '\n'), 1) << r.err;
    for (const auto& entry : fs::recursive_directory_iterator(work_dir() / run)) {
      EXPECT_EQ(entry.path().filename().string().find("tmp"), std::string::npos) << entry.path();
      if (entry.is_directory() && entry.path().parent_path().filename() == "checkpoints")
        EXPECT_TRUE(fs::exists(entry.path() / "state.json")) << "incomplete " << entry.path();
    }
  }
}

// While a run holds its folder, a second `peft train` on it is refused and changes nothing.
TEST(TrainCli, SecondTrainOnABusyRunFolderIsRefused) {
  CliRun first = peft_cli(train_args("busy", "--max-steps 2"));
  ASSERT_EQ(first.status, 0) << first.err;
  const fs::path dir = work_dir() / "busy";
  const int fd = ::open((dir / ".lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // as a running `peft train` holds it
  for (const char* extra : {"--max-steps 2 --overwrite", "--max-steps 2 --resume"}) {
    CliRun again = peft_cli(train_args("busy", extra));
    EXPECT_EQ(again.status, 1) << extra;
    EXPECT_THAT(again.err, HasSubstr("is in use by another peft train")) << extra;
    EXPECT_TRUE(fs::exists(dir / "task" / "adapter_model.safetensors")) << extra;
  }
  ::close(fd);
  EXPECT_EQ(peft_cli(train_args("busy", "--max-steps 2 --overwrite")).status, 0);
}
