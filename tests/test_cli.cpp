// The `peft` CLI as a user runs it: exit codes, one-line errors, outputs.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "test_util.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

struct CliRun {
  int status;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `peft ARGS` with `input` on stdin.
CliRun peft_cli(const std::string& args, const std::string& input = "") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("peft-cli-{}", getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "in") << input;
  const std::string cmd = fmt::format("'{}' {} < '{}' > '{}' 2> '{}'", PEFT_CLI_PATH, args, (dir / "in").string(),
                                      (dir / "out").string(), (dir / "err").string());
  const int raw = std::system(cmd.c_str());
  CliRun r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(dir / "out"), slurp(dir / "err")};
  fs::remove_all(dir);
  return r;
}

size_t line_count(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

std::string tiny_bert() { return (peft::test::fixtures_dir() / "encoder" / "tiny-bert").string(); }

bool have_minilm() { return peft_cli("info all-MiniLM-L6-v2").status == 0; }

}  // namespace

TEST(Cli, HelpListsSubcommands) {
  CliRun r = peft_cli("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* sub : {"info", "tokenize", "embed"}) EXPECT_THAT(r.out, HasSubstr(sub));
}

TEST(Cli, InfoReportsArchitectureAndParameterCount) {
  CliRun r = peft_cli(fmt::format("info --json '{}'", tiny_bert()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"model_type\": \"bert\""));
  EXPECT_THAT(r.out, HasSubstr("\"layers\": 2"));
  EXPECT_THAT(r.out, HasSubstr("model.safetensors"));
}

TEST(Cli, UnknownModelIsOneLineErrorWithNonZeroExit) {
  CliRun r = peft_cli("info /no/such/model");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr("/no/such/model"));
}

TEST(Cli, BadDeviceNamesTheOption) {
  CliRun r = peft_cli(fmt::format("embed '{}' --device tpu", tiny_bert()), "hello\n");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--device"));
}

TEST(Cli, TokenizeMatchesTransformersIds) {
  if (!have_minilm()) {
    if (peft::test::in_ci()) FAIL() << "all-MiniLM-L6-v2 not installed";
    GTEST_SKIP() << "all-MiniLM-L6-v2 not installed";
  }
  // transformers: tok("Hello, world!") and tok("Hello", "world")
  CliRun r = peft_cli("tokenize all-MiniLM-L6-v2", "Hello, world!\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "101 7592 1010 2088 999 102\n");
  r = peft_cli("tokenize all-MiniLM-L6-v2 --pairs --format jsonl", "Hello\tworld\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"ids\":[101,7592,102,2088,102]"));
  EXPECT_THAT(r.out, HasSubstr("\"type_ids\":[0,0,0,1,1]"));
}

TEST(Cli, PairsWithoutTabNameTheLine) {
  if (!have_minilm()) GTEST_SKIP() << "all-MiniLM-L6-v2 not installed";
  CliRun r = peft_cli("tokenize all-MiniLM-L6-v2 --pairs", "a\tb\nno tab here\n");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("line 2"));
}

TEST(Cli, EmbedWritesOneUnitVectorPerLineAndNeverClobbersOnFailure) {
  if (!have_minilm()) {
    if (peft::test::in_ci()) FAIL() << "all-MiniLM-L6-v2 not installed";
    GTEST_SKIP() << "all-MiniLM-L6-v2 not installed";
  }
  const fs::path out = fs::temp_directory_path() / fmt::format("peft-embed-{}.jsonl", getpid());
  CliRun r = peft_cli(fmt::format("embed all-MiniLM-L6-v2 -o '{}'", out.string()), "one\ntwo words\n\n");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string written = slurp(out);
  EXPECT_EQ(line_count(written), 3u);
  EXPECT_THAT(written, HasSubstr("\"index\": 2"));

  // A failing run leaves the earlier output untouched.
  r = peft_cli(fmt::format("embed /no/such/model -o '{}'", out.string()), "x\n");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(slurp(out), written);
  fs::remove(out);
}
