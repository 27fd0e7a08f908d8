// Continuous batching: rows that join a running DecodeSession between steps, each with its own
// adapter, options and budget, generate exactly what each generates alone; the KV cache's join and
// trimming; per-row context budgets; errors that leave the session running; text sessions.
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/generate/decode_session.h"
#include "peft/generate/text_generation.h"
#include "multi_task_fixtures.h"

namespace fs = std::filesystem;

namespace {

using peft::DecodedToken;
using peft::DecodeRow;
using peft::DecodeSession;
using peft::GenerationOptions;

// A WordPiece vocabulary for tiny-llama's 300 ids: every id decodes to a word.
std::unique_ptr<peft::tok::Tokenizer> tiny_llama_words() {
  const auto dir = peft::test::temp_dir("decode_session_vocab");
  fs::create_directories(dir);
  std::ofstream vocab(dir / "vocab.txt");
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (char c = 'a'; c <= 'z'; ++c) tokens.push_back(std::string(1, c));
  for (auto& w : peft::test::kWords) tokens.push_back(w);
  while (tokens.size() < 300) tokens.push_back(fmt::format("t{}", tokens.size()));
  for (auto& t : tokens) vocab << t << "\n";
  vocab.close();
  return peft::tok::load_tokenizer(dir.string());
}

std::shared_ptr<const GenerationOptions> options(int64_t max_new, std::function<void(GenerationOptions&)> edit = {}) {
  GenerationOptions o;
  o.max_new_tokens = max_new;
  o.stop_token_ids = {2};
  if (edit) edit(o);
  return std::make_shared<const GenerationOptions>(o);
}

// What a row generates alone, through generate().
std::vector<int64_t> alone(peft::Model& lm, const DecodeRow& row) {
  GenerationOptions o = *row.options;
  o.row_adapters = {row.adapter};
  return peft::generate(lm, {row.prompt}, o).tokens[0];
}

// Collects each row's tokens; checks that a row reports nothing after its last token.
struct Collected {
  std::map<uint64_t, std::vector<int64_t>> tokens;
  std::set<uint64_t> ended;
  void take(const std::vector<DecodedToken>& step) {
    for (auto& t : step) {
      EXPECT_FALSE(ended.count(t.row)) << "row " << t.row << " reported after its end";
      if (t.token >= 0) tokens[t.row].push_back(t.token);
      if (t.last) ended.insert(t.row);
    }
  }
};

TEST(KVCache, JoinRightAlignsRowsAndSelectRowsDropsUnusedPositions) {
  const auto f = torch::TensorOptions().dtype(torch::kFloat);
  peft::KVCache a(1, 1, 1, 4, 1, f), b(1, 2, 1, 2, 1, f);
  a.append(0, torch::tensor({1.f, 2.f, 3.f}).view({1, 1, 3, 1}), torch::tensor({1.f, 2.f, 3.f}).view({1, 1, 3, 1}));
  a.commit(torch::tensor({{0, 1, 1}}, torch::kLong));  // position 0 is padding
  b.append(0, torch::tensor({7.f, 8.f, 9.f, 10.f}).view({2, 1, 2, 1}), torch::tensor({7.f, 8.f, 9.f, 10.f}).view({2, 1, 2, 1}));
  b.commit(torch::tensor({{1, 1}, {0, 1}}, torch::kLong));
  a.join(b, 5);
  // a's padding column is used by no row, so both sides are two long; room for 5 more.
  EXPECT_EQ(a.batch(), 3);
  EXPECT_EQ(a.length(), 2);
  EXPECT_EQ(a.capacity(), 7);
  EXPECT_TRUE(torch::equal(a.key_mask(), torch::tensor({{1, 1}, {1, 1}, {0, 1}}, torch::kLong)));
  auto [k, v] = a.append(0, torch::zeros({3, 1, 1, 1}), torch::zeros({3, 1, 1, 1}));
  EXPECT_TRUE(torch::equal(k.squeeze(3).squeeze(1), torch::tensor({{2.f, 3.f, 0.f}, {7.f, 8.f, 0.f}, {9.f, 10.f, 0.f}})));
  a.commit(torch::ones({3, 1}, torch::kLong));
  // Rows 0 and 1 leave; row 2 never used its first position, which goes.
  a.select_rows(torch::tensor({2}, torch::kLong));
  EXPECT_EQ(a.length(), 2);
  EXPECT_TRUE(torch::equal(a.key_mask(), torch::tensor({{1, 1}}, torch::kLong)));
  a.reserve(10);
  EXPECT_GE(a.capacity(), 12);
  EXPECT_TRUE(torch::equal(a.key_mask(), torch::tensor({{1, 1}}, torch::kLong)));
}

// Rows of every adapter kind join at different steps, with their own budgets and options (a greedy
// row with a repetition penalty, a seeded sampled row); each gets the tokens it gets alone.
TEST(DecodeSession, RowsJoiningBetweenStepsGenerateWhatEachGeneratesAlone) {
  for (const std::string model_name : {"tiny-llama", "tiny-gpt2"}) {
    SCOPED_TRACE(model_name);
    auto lm = peft::test::decoder_with_tasks(model_name);
    const auto greedy9 = options(9), greedy3 = options(3), greedy6 = options(6);
    const auto penalised = options(7, [](GenerationOptions& o) { o.repetition_penalty = 1.8; });
    const auto sampled = options(8, [](GenerationOptions& o) {
      o.do_sample = true;
      o.temperature = 1.3;
      o.top_k = 40;
      o.seed = 11;
    });
    const std::vector<std::vector<DecodeRow>> waves = {
        {{0, {5, 9, 17, 3}, "lora", greedy9}, {1, {44}, "prefix", greedy3}, {2, {7, 7, 8, 120, 33}, "", sampled}},
        {{3, {11, 12}, "prefix2", greedy6}, {4, {250, 1, 2}, "ia3", penalised}, {5, {60, 61, 62}, "lora_b", greedy9},
         {6, {9, 9, 9, 9, 9, 9, 9, 9}, "adamix_lora", greedy3}},
        {{7, {13}, "pfeiffer", greedy9}, {8, {3, 1, 4, 1, 5}, "lora_c", sampled}, {9, {77, 78}, "lora_b", greedy6}}};
    DecodeSession session(*lm, /*routed=*/true);
    Collected got;
    for (size_t w = 0; w < waves.size(); ++w) {
      got.take(session.add(waves[w]));
      for (int s = 0; s < 2 && !session.empty(); ++s) got.take(session.step());
    }
    while (!session.empty()) got.take(session.step());
    for (auto& wave : waves)
      for (auto& row : wave) {
        EXPECT_EQ(got.tokens[row.id], alone(*lm, row)) << "row " << row.id << " task " << row.adapter;
        EXPECT_TRUE(got.ended.count(row.id));
      }
    EXPECT_EQ(got.tokens[1].size(), 3u);
    EXPECT_EQ(got.tokens[0].size(), 9u);
  }
}

// Each row's budget is cut at the context on its own: a long prompt stops at the context while a
// short one beside it generates all its tokens.
TEST(DecodeSession, EachRowStopsAtTheContextOnItsOwn) {
  auto lm = peft::load_causal_lm((peft::test::fixtures_dir() / "decoder" / "tiny-gpt2").string());  // 64 positions
  lm->eval();
  DecodeSession session(*lm, false);
  const auto o = options(10, [](GenerationOptions& g) { g.stop_token_ids.clear(); });
  Collected got;
  got.take(session.add({{0, std::vector<int64_t>(60, 7), "", o}, {1, {7, 8}, "", o}, {2, std::vector<int64_t>(64, 7), "", o}}));
  while (!session.empty()) got.take(session.step());
  EXPECT_EQ(got.tokens[0].size(), 4u);
  EXPECT_EQ(got.tokens[1].size(), 10u);
  EXPECT_EQ(got.tokens[2].size(), 0u);  // fills the context: ends at once, without a token
  EXPECT_TRUE(got.ended.count(2));
  EXPECT_THROW(session.add({{3, std::vector<int64_t>(65, 7), "", o}}), peft::Error);
}

// A failing add (a prompt too long, an id in use, an empty prompt, an adapter on an unrouted session)
// changes nothing: the running rows go on as if it had not happened. remove() ends a row at once.
TEST(DecodeSession, FailedAddsLeaveTheSessionAsItWasAndRemovedRowsLeave) {
  auto lm = peft::load_causal_lm((peft::test::fixtures_dir() / "decoder" / "tiny-llama").string());
  lm->eval();
  const auto o = options(8);
  const std::vector<DecodeRow> rows = {{0, {5, 6, 7}, "", o}, {1, {8, 9}, "", o}, {2, {10}, "", o}};
  DecodeSession session(*lm, false);
  Collected got;
  got.take(session.add(rows));
  got.take(session.step());
  const int64_t context = lm->arch().max_positions;
  EXPECT_THROW(session.add({{5, {1}, "", o}, {6, std::vector<int64_t>(size_t(context) + 1, 3), "", o}}), peft::Error);
  EXPECT_THROW(session.add({{1, {4}, "", o}}), peft::Error);
  EXPECT_THROW(session.add({{7, {}, "", o}}), peft::Error);
  EXPECT_THROW(session.add({{8, {4}, "lora", o}}), peft::Error);
  EXPECT_THROW(session.add({{9, {4}, "", nullptr}}), peft::Error);
  EXPECT_EQ(session.size(), 3u);
  session.remove(2);
  session.remove(42);  // unknown: ignored
  EXPECT_EQ(session.size(), 2u);
  const size_t row2 = got.tokens[2].size();
  while (!session.empty()) got.take(session.step());
  EXPECT_EQ(got.tokens[2].size(), row2);
  for (size_t r = 0; r < 2; ++r) EXPECT_EQ(got.tokens[r], alone(*lm, rows[r])) << "row " << r;
}

// The text session: a row joining mid-way streams the text generate_text gives it alone, cut at its
// stop string, with its own finish reason.
TEST(TextDecodeSession, JoiningRowsStreamTheirOwnTextAndStopStrings) {
  auto lm = peft::test::decoder_with_tasks("tiny-llama");
  peft::AdaptedModel view(lm);
  const auto tok = tiny_llama_words();
  peft::TextGenerationOptions plain;
  plain.generation.max_new_tokens = 10;
  plain.generation.stop_token_ids = {2};
  const auto first = std::make_shared<const peft::TextGenerationOptions>(plain);
  // The stop string is a piece of what the row generates alone, so that it must cut there.
  peft::TextGenerationOptions base_alone = plain;
  base_alone.generation.row_adapters = {"lora"};
  const std::string whole = peft::generate_text(view, *tok, {{20, 21, 22}}, base_alone)[0].text;
  ASSERT_GE(whole.size(), 4u);
  peft::TextGenerationOptions stopping = plain;
  stopping.stop_strings = {whole.substr(2, 2)};
  const auto second = std::make_shared<const peft::TextGenerationOptions>(stopping);

  peft::TextDecodeSession session(view, *tok, true);
  std::map<uint64_t, std::string> streamed;
  std::map<uint64_t, peft::GeneratedText> done;
  const auto on_text = [&](uint64_t row, const std::string& piece) { streamed[row] += piece; };
  const auto on_done = [&](uint64_t row, peft::GeneratedText t) { done[row] = std::move(t); };
  session.add({{0, {30, 31}, "ia3", first}}, on_text, on_done);
  session.step(on_text, on_done);
  session.add({{1, {20, 21, 22}, "lora", second}}, on_text, on_done);
  while (!session.empty()) session.step(on_text, on_done);
  peft::TextGenerationOptions ia3_alone = plain;
  ia3_alone.generation.row_adapters = {"ia3"};
  const auto want0 = peft::generate_text(view, *tok, {{30, 31}}, ia3_alone)[0];
  EXPECT_EQ(done[0].text, want0.text);
  EXPECT_EQ(done[0].token_ids, want0.token_ids);
  EXPECT_EQ(streamed[0], want0.text);
  EXPECT_EQ(done[1].text, whole.substr(0, 2));
  EXPECT_EQ(streamed[1], whole.substr(0, 2));
  EXPECT_EQ(done[1].finish_reason, "stop");
}

}  // namespace
