// Causal-LM task data: E2E / JSONL / chat examples, completion-only labels, batches with per-token labels,
// and `peft train` / `peft eval` on a real decoder (SmolLM2-135M-Instruct) end to end.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "peft/data/lm_data.h"
#include "peft/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;

namespace {

struct LmTempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("peft-lm-data-{}", ::getpid());
  LmTempDir() { fs::create_directories(path); }
  ~LmTempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return path / name;
  }
};

TEST(LmData, CompletionOnlyLabelsEosAndTruncation) {
  PEFT_REQUIRE_SHARED_DATA(data);
  auto tokenizer = peft::tok::load_tokenizer((data / "tokenizers/gpt2").string());
  peft::data::LmDataset set;
  set.source = "mem";
  set.examples = {{"Hello world", " and more", {}, 1}, {"A", " b c d e f g h", {}, 2}};
  peft::data::LmTokenizeOptions o;
  o.max_seq_length = 6;
  o.eos_id = 50256;
  const auto t = peft::data::tokenize_lm(set, *tokenizer, o);
  ASSERT_EQ(t.size(), 2u);
  // "Hello world" = 15496 995, " and more" = 290 517, then eos
  EXPECT_EQ(t.encodings[0].ids, (std::vector<int64_t>{15496, 995, 290, 517, 50256}));
  EXPECT_EQ(t.token_labels[0], (std::vector<int64_t>{-100, -100, 290, 517, 50256}));
  // cut at max_seq_length: the eos does not fit
  EXPECT_EQ(t.encodings[1].size(), 6u);
  EXPECT_EQ(t.token_labels[1][0], -100);
  EXPECT_NE(t.token_labels[1][5], 50256);
  const auto batch = peft::data::collate(t, {0, 1});
  ASSERT_EQ(batch.labels.sizes(), (torch::IntArrayRef{2, 6}));
  EXPECT_EQ(batch.labels[0][5].item<int64_t>(), -100);  // padding
  EXPECT_EQ(batch.input.attention_mask[0][5].item<int64_t>(), 0);
  // A prompt that leaves no room for the completion names its line.
  set.examples = {{"one two three four five six seven", " x", {}, 7}};
  try {
    peft::data::tokenize_lm(set, *tokenizer, o);
    FAIL() << "expected an error";
  } catch (const peft::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("mem:7"));
  }
}

TEST(LmData, E2eSplitsGroupReferencesAndJsonlErrorsNameTheLine) {
  PEFT_REQUIRE_SHARED_DATA(data);
  const auto train = peft::data::load_e2e_lm((data / "e2e").string(), "train", 5);
  ASSERT_EQ(train.size(), 5u);
  EXPECT_THAT(train.examples[0].prompt, ::testing::EndsWith(" ||"));
  EXPECT_EQ(train.examples[0].completion[0], ' ');
  const auto dev = peft::data::load_e2e_lm((data / "e2e").string(), "dev", 3);
  ASSERT_EQ(dev.size(), 3u);
  EXPECT_GT(dev.examples[0].references.size(), 1u);  // every reference of the MR

  LmTempDir tmp;
  auto f = tmp.write("a.jsonl", "{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \"p\"}\n");
  EXPECT_THROW(
      {
        try {
          peft::data::load_lm_jsonl(f.string());
        } catch (const peft::Error& e) {
          EXPECT_THAT(e.what(), HasSubstr("line 2 has no \"completion\""));
          throw;
        }
      },
      peft::Error);
  f = tmp.write("b.jsonl", "{\"prompt\": \"p\", \"completion\": \"\"}\n");
  EXPECT_THROW(peft::data::load_lm_jsonl(f.string()), peft::Error);
  f = tmp.write("c.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  const auto render = [](const std::vector<peft::data::ChatTurn>& turns, bool gen) {
    std::string s;
    for (auto& t : turns) s += "<" + t.role + ">" + t.content + "</>";
    return gen ? s + "<assistant>" : s;
  };
  EXPECT_THROW(peft::data::load_chat_jsonl(f.string(), render), peft::Error);  // last message is not the assistant's
  f = tmp.write("d.jsonl",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n");
  const auto chat = peft::data::load_chat_jsonl(f.string(), render);
  ASSERT_EQ(chat.size(), 1u);
  EXPECT_EQ(chat.examples[0].prompt, "<user>hi</><assistant>");
  EXPECT_EQ(chat.examples[0].completion, "yo</>");
}


// A short LoRA run on E2E: the dev loss falls, the adapter is PEFT's CAUSAL_LM format, eval scores generations.
TEST(TrainLmCli, LoraOnE2eLowersDevLossAndEvalScoresGenerations) {
  PEFT_REQUIRE_SMOLLM2(gguf_path);
  PEFT_REQUIRE_SHARED_DATA(data);
  LmTempDir tmp;
  const std::string model = "'" + peft::test::smollm2_gguf_path().string() + "'";
  const fs::path run = tmp.path / "run";
  auto r = peft::test::run_peft(fmt::format(
      "train --model {} --task e2e --data '{}' --method 'lora:r=4,lora_alpha=32,target_modules=q_proj|v_proj' "
      "--train-samples 32 --dev-samples 8 --batch-size 8 --max-steps 8 --eval-every 4 --lr 2e-3 --out '{}'",
      model, (data / "e2e").string(), run.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream log(run / "metrics.jsonl");
  std::vector<double> dev_loss;
  for (std::string line; std::getline(log, line);) {
    const json j = json::parse(line);
    if (j.at("type") == "eval") dev_loss.push_back(j.at("loss"));
  }
  ASSERT_EQ(dev_loss.size(), 2u);
  EXPECT_LT(dev_loss[1], dev_loss[0]);
  std::ifstream config_file(run / "task" / "adapter_config.json");
  const json config = json::parse(config_file);
  EXPECT_EQ(config.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(config.at("peft_type"), "LORA");

  const fs::path predictions = tmp.path / "pred.jsonl";
  r = peft::test::run_peft(fmt::format("eval '{}' --data '{}' --samples 4 --max-new-tokens 16 --predictions '{}'",
                                       run.string(), (data / "e2e").string(), predictions.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  const json metrics = json::parse(r.out);
  for (const char* k : {"bleu", "nist", "meteor", "rouge_l", "cider", "loss", "perplexity"}) EXPECT_TRUE(metrics.contains(k)) << k;
  EXPECT_GE(metrics.at("bleu").get<double>(), 0.0);
  EXPECT_LE(metrics.at("rouge_l").get<double>(), 1.0);
  std::ifstream pred(predictions);
  size_t lines = 0;
  for (std::string line; std::getline(pred, line); ++lines) {
    const json j = json::parse(line);
    EXPECT_GT(j.at("references").size(), 1u);
    EXPECT_TRUE(j.at("prediction").is_string());
  }
  EXPECT_EQ(lines, 4u);
}

TEST(TrainLmCli, BadInputIsAOneLineError) {
  PEFT_REQUIRE_SHARED_DATA(data);
  LmTempDir tmp;
  // An encoder cannot train a generation task.
  auto r = peft::test::run_peft(fmt::format("train --model all-MiniLM-L6-v2 --task e2e --data '{}' --out '{}'",
                                            (data / "e2e").string(), (tmp.path / "a").string()));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("needs a decoder"));
  if (peft::test::smollm2_gguf_path().empty()) return;
  const std::string model = "'" + peft::test::smollm2_gguf_path().string() + "'";
  r = peft::test::run_peft(fmt::format("train --model {} --task lm --out '{}'", model, (tmp.path / "b").string()));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--task lm needs --train"));
  const auto bad = tmp.write("bad.jsonl", "{\"prompt\": \"a\", \"answer\": \"b\"}\n");
  r = peft::test::run_peft(fmt::format("train --model {} --task lm --train '{}' --out '{}'", model, bad.string(),
                                       (tmp.path / "c").string()));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("bad.jsonl: line 1 has no \"completion\" column"));
  EXPECT_FALSE(fs::exists(tmp.path / "c" / "task"));
}

}  // namespace
