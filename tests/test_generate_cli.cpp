// `peft generate`, `peft info` and `peft tokenize` on a real decoder (SmolLM2-135M-Instruct's GGUF) as a user
// runs them: streamed continuations and JSONL equal to HF transformers' greedy output (fixtures from
// scripts/fixtures/make_smollm2_fixtures.py), stop strings, chat templates, and one-line errors.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "smollm2_reference.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;

namespace {


const json& reference() { return peft::test::smollm2_reference(); }

std::string gguf() { return "'" + peft::test::smollm2_gguf_path().string() + "'"; }

// A shell-quoted argument (single quotes; the texts hold no single quote... except where escaped here).
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("peft-generate-cli-{}", ::getpid());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(GenerateCli, StreamsTheGreedyContinuationOfTransformers) {
  PEFT_REQUIRE_SMOLLM2(gguf_path);
  const json& p = reference().at("prompts")[0];
  const auto r = peft::test::run_peft("generate " + gguf() + " --prompt " + quoted(p.at("text")) + " -n 32");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, p.at("generated_text").get<std::string>() + "\n");
}

TEST(GenerateCli, ChatPromptUsesTheModelsTemplate) {
  PEFT_REQUIRE_SMOLLM2(gguf_path);
  const json& p = reference().at("prompts")[8];
  ASSERT_TRUE(p.at("chat").get<bool>());
  const auto r = peft::test::run_peft("generate " + gguf() + " --chat --prompt " + quoted(p.at("text")) + " -n 32");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, p.at("generated_text").get<std::string>() + "\n");
}

TEST(GenerateCli, InputFileWritesJsonlWithTokenIdsAndStopStringsCutTheText) {
  PEFT_REQUIRE_SMOLLM2(gguf_path);
  TempDir tmp;
  const auto& prompts = reference().at("prompts");
  {
    std::ofstream in(tmp.path / "prompts.jsonl");
    for (int i : {0, 3}) in << json{{"prompt", prompts[i].at("text")}}.dump() << "\n";
    in << json{{"messages", json::array({json{{"role", "user"}, {"content", prompts[9].at("text")}}})}}.dump() << "\n";
  }
  const fs::path out = tmp.path / "out.jsonl";
  auto r = peft::test::run_peft("generate " + gguf() + " --input '" + (tmp.path / "prompts.jsonl").string() +
                                "' --output '" + out.string() + "' -n 32 --batch-size 2");
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream lines(out);
  std::string line;
  std::vector<json> rows;
  while (std::getline(lines, line)) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  const int which[] = {0, 3, 9};
  for (size_t k = 0; k < 3; ++k) {
    const json& want = prompts[which[k]];
    EXPECT_EQ(rows[k].at("token_ids"), want.at("generated")) << want.at("text");
    EXPECT_EQ(rows[k].at("text"), want.at("generated_text")) << want.at("text");
    EXPECT_EQ(rows[k].at("prompt"), want.at("text"));
  }

  // A stop string: the text ends before it, the finish reason says so.
  r = peft::test::run_peft("generate " + gguf() + " --prompt " + quoted(prompts[0].at("text")) + " --prompt " +
                           quoted(prompts[3].at("text")) + " -n 32 --stop '\n'");
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream stream(r.out);
  for (int i : {0, 3}) {
    ASSERT_TRUE(std::getline(stream, line));
    const json row = json::parse(line);
    const std::string full = prompts[i].at("generated_text");
    EXPECT_EQ(row.at("text"), full.substr(0, full.find('\n')));
    EXPECT_EQ(row.at("finish_reason"), full.find('\n') == std::string::npos ? "length" : "stop");
  }
}

TEST(GenerateCli, BadInputIsAOneLineErrorNamingWhatIsWrong) {
  PEFT_REQUIRE_SMOLLM2(gguf_path);
  TempDir tmp;
  auto r = peft::test::run_peft("generate " + gguf());
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--prompt or --input"));
  r = peft::test::run_peft("generate " + gguf() + " --prompt hi --system 'be brief'");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--system needs --chat"));
  std::ofstream(tmp.path / "bad.jsonl") << "{\"prompt\": \"ok\"}\nnot json\n";
  r = peft::test::run_peft("generate " + gguf() + " --input '" + (tmp.path / "bad.jsonl").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("bad.jsonl: line 2"));
  // A PEFT adapter made for another base model names the tensor at fault.
  r = peft::test::run_peft("generate " + gguf() + " --prompt hi --adapter '" +
                           (fs::path(PEFT_SOURCE_DIR) / "tests/fixtures/decoder/lora-llama").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("lora"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(GenerateCli, TokenizerOfAnotherModelIsRefused) {
  // tiny-gpt2 has 300 embedding rows; GPT-2's tokenizer has 50257 tokens.
  const fs::path shared = peft::test::shared_data_dir();
  if (shared.empty()) {
    if (peft::test::in_ci()) FAIL() << "../shared/data required in CI";
    GTEST_SKIP() << "../shared/data not found; skipping";
  }
  TempDir tmp;
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(PEFT_SOURCE_DIR) / "tests/fixtures/decoder/tiny-gpt2" / f, tmp.path / f);
  for (const auto& entry : fs::directory_iterator(shared / "tokenizers/gpt2"))
    fs::copy_file(entry.path(), tmp.path / entry.path().filename());
  const auto r = peft::test::run_peft("generate '" + tmp.path.string() + "' --prompt hello");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("50257 tokens but the model's embedding has 300 rows"));
}

TEST(GenerateCli, InfoAndTokenizeWorkOnGgufAndTokenizerOnlyFolders) {
  PEFT_REQUIRE_SMOLLM2(gguf_path);
  auto r = peft::test::run_peft("info " + gguf() + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info.at("parameters"), 134515008);  // HF's num_parameters() for SmolLM2-135M
  EXPECT_EQ(info.at("key_value_heads"), 3);
  EXPECT_EQ(info.at("layers"), 30);
  TempDir tmp;
  std::ofstream(tmp.path / "in.txt") << reference().at("prompts")[0].at("text").get<std::string>() << "\n";
  r = peft::test::run_peft("tokenize " + gguf() + " --input '" + (tmp.path / "in.txt").string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("{}\n", fmt::join(reference().at("prompts")[0].at("ids").get<std::vector<int64_t>>(), " ")));
  const fs::path shared = peft::test::shared_data_dir();
  if (shared.empty()) return;
  std::ofstream(tmp.path / "hello.txt") << "Hello  world\n";
  r = peft::test::run_peft("tokenize '" + (shared / "tokenizers/gpt2").string() + "' --input '" +
                           (tmp.path / "hello.txt").string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "15496 220 995\n");  // GPT2TokenizerFast("Hello  world")
}

}  // namespace
