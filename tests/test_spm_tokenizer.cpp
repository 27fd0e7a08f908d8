// SentencePiece tokenizers against transformers (tests/fixtures/spm, made by
// scripts/fixtures/make_spm_fixtures.py): tokenizer.model folders (BPE with byte fallback, Unigram;
// legacy / non-legacy, with and without add_prefix_space, added tokens) as LlamaTokenizerFast reads
// them, and a GGUF llama vocabulary as AutoTokenizer(gguf_file=...) reads it.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/tokenize/bpe.h"
#include "peft/tokenize/spm.h"
#include "peft/tokenize/tokenizer.h"
#include "test_util.h"
#include "tokenize/spm_proto.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using peft::tok::BpeParts;
using peft::tok::Encoding;
using peft::tok::EncodeOptions;
using peft::tok::GgufConvention;
using peft::tok::Padding;
using peft::tok::PaddingSide;
using peft::tok::SpmModelProto;
using peft::tok::SpmOptions;
using peft::tok::SpmTokenizer;
using peft::tok::StreamingDecoder;
using peft::tok::Tokenizer;
using peft::tok::Truncation;

fs::path spm_fixture(const std::string& name) { return ::peft::test::fixtures_dir() / "spm" / name; }

std::string spm_slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spm_write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

const json& spm_cases() {
  static const json cases = json::parse(spm_slurp(spm_fixture("spm_cases.json")));
  return cases;
}

std::string spm_ids_str(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// The fixture's hash: low 32 bits of FNV-1a 64 over the ids' little-endian int64 bytes.
std::string spm_fnv32(const std::vector<int64_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int64_t id : ids)
    for (int b = 0; b < 8; ++b) h = (h ^ ((static_cast<uint64_t>(id) >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(h & 0xFFFFFFFFu));
  return buf;
}

// A scratch folder of this process, removed at exit.
fs::path spm_scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("peft_spm_test_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    std::atexit([] { std::error_code ec; fs::remove_all(fs::temp_directory_path() / ("peft_spm_test_" + std::to_string(::getpid())), ec); });
    return d;
  }();
  return dir;
}

// The folder of a variant: its base model's tokenizer.model and its tokenizer_config.json.
fs::path spm_variant_dir(const std::string& name) {
  const json& v = spm_cases()["variants"].at(name);
  const fs::path dir = spm_scratch() / name;
  if (!fs::exists(dir / "tokenizer_config.json")) {
    fs::create_directories(dir);
    fs::copy_file(spm_fixture(v["base"].get<std::string>()) / "tokenizer.model", dir / "tokenizer.model",
                  fs::copy_options::overwrite_existing);
    spm_write(dir / "tokenizer_config.json", v["config"].dump());
  }
  return dir;
}

BpeParts spm_gguf_parts() {
  const peft::io::GgufFile f = peft::io::GgufFile::open(spm_fixture("llama.gguf").string());
  BpeParts p;
  p.model = f.get_string("tokenizer.ggml.model");
  p.tokens = f.get_string_array("tokenizer.ggml.tokens");
  for (double s : f.get_float_array("tokenizer.ggml.scores")) p.scores.push_back(static_cast<float>(s));
  for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) p.token_types.push_back(static_cast<int32_t>(t));
  p.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id");
  p.eos_token_id = f.get_int("tokenizer.ggml.eos_token_id");
  p.unk_token_id = f.get_int("tokenizer.ggml.unknown_token_id");
  p.pad_token_id = f.get_int("tokenizer.ggml.padding_token_id");
  p.add_bos_token = f.get_bool("tokenizer.ggml.add_bos_token");
  p.add_eos_token = f.get_bool("tokenizer.ggml.add_eos_token");
  if (f.has("tokenizer.ggml.add_space_prefix")) p.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  return p;
}

// The tokenizer under test for a fixture name ("gguf_original": GgufConvention::Original).
const Tokenizer& spm_tok(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Tokenizer>> made;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = made[name];
  if (!slot) {
    if (name == "gguf" || name == "gguf_noprefix" || name == "gguf_original") {
      BpeParts parts = spm_gguf_parts();
      if (name == "gguf_noprefix") parts.add_space_prefix = false;
      // Through make_bpe_tokenizer, which forwards tokenizer.ggml.model "llama" (what the model loader calls).
      slot = peft::tok::make_bpe_tokenizer(parts, name == "gguf_original" ? GgufConvention::Original
                                                                          : GgufConvention::Transformers);
    } else {
      slot = peft::tok::load_tokenizer(spm_variant_dir(name).string());
    }
  }
  return *slot;
}

Encoding spm_encode(const Tokenizer& tok, const json& input, const EncodeOptions& options = {}) {
  const std::string text = input["text"].get<std::string>();
  if (input.contains("pair")) {
    const std::string pair = input["pair"].get<std::string>();
    return tok.encode(text, std::string_view(pair), options);
  }
  return tok.encode(text, std::nullopt, options);
}

std::string spm_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const peft::Error& e) {
    return e.what();
  }
  return "(no peft::Error)";
}

// ---- every input, per variant ------------------------------------------------------------------

struct SpmTally {
  size_t ids = 0, ids_ok = 0, decodes = 0, decodes_ok = 0, tokens = 0, tokens_ok = 0;
};

// Checks `name` against the expectations of `expected` (a variant's results); returns the tally.
SpmTally check_variant(const std::string& name, const std::string& expected) {
  const json& cases = spm_cases();
  const json& inputs = cases["inputs"];
  const json& results = cases["results"].at(expected);
  const json* ref = cases["decode_ref"].contains(expected) ? &cases["results"].at(cases["decode_ref"][expected].get<std::string>()) : nullptr;
  const Tokenizer& tok = spm_tok(name);
  SpmTally t;
  size_t reported = 0;
  const auto report = [&](const std::string& what) {
    if (reported++ < 6) ADD_FAILURE() << name << ": " << what;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    const json& input = inputs[i];
    const json& want = results[i];
    const Encoding e = spm_encode(tok, input);
    ++t.ids;
    const bool ok = want.contains("ids") ? e.ids == want["ids"].get<std::vector<int64_t>>()
                                         : spm_fnv32(e.ids) == want["hash"].get<std::string>();
    if (ok) ++t.ids_ok;
    else report("ids of " + input.dump() + "\n  got " + spm_ids_str(e.ids) + "\n  expected " +
                (want.contains("ids") ? want["ids"].dump() : "hash " + want["hash"].get<std::string>()));
    if (want.contains("tokens")) {
      ++t.tokens;
      if (e.tokens == want["tokens"].get<std::vector<std::string>>()) ++t.tokens_ok;
      else report("tokens of " + input.dump() + ": " + json(e.tokens).dump());
    }
    if (!ok) continue;  // decodes of other ids would not compare
    for (const auto& [key, skip] : {std::pair<const char*, bool>{"decode", false}, {"decode_skip", true}}) {
      const json* w = want.contains(key) ? &want[key] : nullptr;
      if (w == nullptr && ref != nullptr && input["group"] != "glue" && (*ref)[i].contains(key)) w = &(*ref)[i][key];
      if (w == nullptr) continue;
      ++t.decodes;
      const std::string got = tok.decode(e.ids, skip);
      if (got == w->get<std::string>()) ++t.decodes_ok;
      else report(std::string(key) + " of " + input.dump() + ": " + json(got).dump() + " expected " + w->dump());
    }
  }
  std::printf("[spm parity] %-24s ids %zu/%zu, tokens %zu/%zu, decodes %zu/%zu\n", name.c_str(), t.ids_ok, t.ids,
              t.tokens_ok, t.tokens, t.decodes_ok, t.decodes);
  EXPECT_EQ(t.ids_ok, t.ids) << name;
  EXPECT_EQ(t.tokens_ok, t.tokens) << name;
  EXPECT_EQ(t.decodes_ok, t.decodes) << name;
  return t;
}

class SpmVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(SpmVariant, IdsTokensDecodes) {
  const SpmTally t = check_variant(GetParam(), GetParam());
  EXPECT_GT(t.ids, 300u);
}

INSTANTIATE_TEST_SUITE_P(Variants, SpmVariant,
                         ::testing::Values("bpe", "bpe_nonlegacy", "bpe_noprefix", "bpe_nonlegacy_noprefix", "bpe_extra",
                                           "unigram", "unigram_nonlegacy", "gguf", "gguf_noprefix"),
                         [](const auto& info) { return info.param; });

// GgufConvention::Original is LlamaTokenizerFast(legacy=False) on the same pieces: bpe_nonlegacy.
TEST(SpmGguf, OriginalConventionIsTheNonLegacyFolder) { check_variant("gguf_original", "bpe_nonlegacy"); }

TEST(SpmParity, SpecialIdsAndSizes) {
  for (const auto& [name, m] : spm_cases()["meta"].items()) {
    SCOPED_TRACE(name);
    const Tokenizer& tok = spm_tok(name);
    const auto opt = [](const json& j) { return j.is_null() ? std::optional<int64_t>() : std::optional<int64_t>(j.get<int64_t>()); };
    EXPECT_EQ(tok.vocab_size(), m["vocab_size"].get<size_t>());
    EXPECT_EQ(tok.bos_id(), opt(m["bos_id"]));
    EXPECT_EQ(tok.unk_id(), opt(m["unk_id"]));
    if (name.rfind("gguf", 0) == 0) {
      // Deliberate differences: transformers' GGUFLlamaConverter names tokens[bos_token_id] as eos and
      // drops padding_token_id; we keep the file's eos and padding ids.
      EXPECT_EQ(m["eos_id"], 1);
      EXPECT_TRUE(m["pad_id"].is_null());
      EXPECT_EQ(tok.eos_id(), std::optional<int64_t>(2));
      EXPECT_EQ(tok.pad_id(), std::optional<int64_t>(0));
    } else {
      EXPECT_EQ(tok.eos_id(), opt(m["eos_id"]));
      EXPECT_EQ(tok.pad_id(), opt(m["pad_id"]));
    }
    EXPECT_EQ(tok.padding_side(), m["padding_side"] == "left" ? PaddingSide::Left : PaddingSide::Right);
    EXPECT_EQ(tok.model_max_length(),
              m["model_max_length"].is_null() ? std::optional<size_t>() : std::optional<size_t>(m["model_max_length"].get<size_t>()));
    EXPECT_EQ(tok.decode_cleans_up(), m["clean_up"].get<bool>());
    EXPECT_FALSE(tok.cls_id().has_value());
    EXPECT_FALSE(tok.mask_id().has_value());
  }
  EXPECT_FALSE(dynamic_cast<const SpmTokenizer&>(spm_tok("bpe")).is_unigram());
  EXPECT_TRUE(dynamic_cast<const SpmTokenizer&>(spm_tok("unigram")).is_unigram());
  const Tokenizer& tok = spm_tok("bpe_extra");
  EXPECT_EQ(tok.token_to_id("<pad>"), std::optional<int64_t>(1500));
  EXPECT_EQ(tok.id_to_token(1502), "<mask>");
  EXPECT_EQ(tok.token_to_id("\xE2\x96\x81the"), spm_tok("bpe").token_to_id("\xE2\x96\x81the"));
  EXPECT_NE(spm_error_of([&] { tok.id_to_token(99999); }).find("99999"), std::string::npos);
}

// ---- padding and truncation --------------------------------------------------------------------

TEST(SpmParity, PaddingAndTruncation) {
  const json& cases = spm_cases();
  const std::vector<std::string> texts = cases["batch_texts"].get<std::vector<std::string>>();
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const json& p : cases["batch_pairs"]) pairs.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
  size_t checked = 0;
  for (const auto& [name, batches] : cases["batches"].items()) {
    const Tokenizer& tok = spm_tok(name);
    for (const json& b : batches) {
      SCOPED_TRACE(name + " " + b.dump().substr(0, 160));
      EncodeOptions o;
      const std::string padding = b["padding"].get<std::string>();
      o.padding = padding == "longest" ? Padding::Longest : padding == "max_length" ? Padding::MaxLength : Padding::None;
      if (!b["max_length"].is_null()) o.max_length = b["max_length"].get<size_t>();
      if (!b["truncation"].is_null()) o.truncation = Truncation::LongestFirst;
      if (!b["padding_side"].is_null()) o.padding_side = b["padding_side"] == "left" ? PaddingSide::Left : PaddingSide::Right;
      const std::vector<Encoding> got = b["pairs"].get<bool>() ? tok.encode_batch(pairs, o) : tok.encode_batch(texts, o);
      ASSERT_EQ(got.size(), b["ids"].size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].ids, b["ids"][i].get<std::vector<int64_t>>()) << i;
        EXPECT_EQ(got[i].attention_mask, b["mask"][i].get<std::vector<int64_t>>()) << i;
        EXPECT_EQ(got[i].tokens.size(), got[i].ids.size());
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 28u);
  // A tokenizer without a pad token cannot pad.
  EncodeOptions o;
  o.padding = Padding::Longest;
  EXPECT_NE(spm_error_of([&] { spm_tok("bpe").encode_batch(texts, o); }).find("pad"), std::string::npos);
}

// ---- streaming decode ----------------------------------------------------------------------------

TEST(SpmStreaming, PushesJoinToDecode) {
  const json& inputs = spm_cases()["inputs"];
  for (const std::string name : {"bpe", "bpe_noprefix", "bpe_nonlegacy", "bpe_extra", "unigram", "gguf"}) {
    const Tokenizer& tok = spm_tok(name);
    size_t checked = 0, skipped = 0;
    for (const json& input : inputs) {
      const Encoding e = spm_encode(tok, input);
      for (bool skip : {false, true}) {
        const std::string want = tok.decode(e.ids, skip);
        // The one exception: a run of byte tokens that is not valid UTF-8 decodes to one U+FFFD per
        // byte token, while the stream (which cannot know the run has ended) repairs it as UTF-8.
        if (want.find("\xEF\xBF\xBD") != std::string::npos) {
          ++skipped;
          continue;
        }
        StreamingDecoder stream(tok, skip);
        std::string got;
        for (int64_t id : e.ids) got += stream.push(id);
        got += stream.flush();
        EXPECT_EQ(got, want) << name << " " << input.dump();
        ++checked;
      }
    }
    EXPECT_GT(checked, 500u) << name;
    EXPECT_LT(skipped, 20u) << name;
  }
}

TEST(SpmStreaming, ByteFallbackCharactersComeWhole) {
  const Tokenizer& tok = spm_tok("bpe");
  const Encoding e = tok.encode("日本 😀", std::nullopt);  // all byte-fallback pieces
  StreamingDecoder stream(tok, true);
  std::vector<std::string> parts;
  for (int64_t id : e.ids) parts.push_back(stream.push(id));
  parts.push_back(stream.flush());
  std::string joined;
  for (const std::string& p : parts) {
    joined += p;
    // Every piece is whole UTF-8: no lone lead or continuation bytes.
    EXPECT_EQ(p.find("\xEF\xBF\xBD"), std::string::npos);
  }
  EXPECT_EQ(joined, "日本 😀");
  EXPECT_EQ(std::count(parts.begin(), parts.end(), std::string()), static_cast<long>(parts.size()) - 4);
}

// ---- GLUE dev (../shared/data) -------------------------------------------------------------------

struct SpmGlueTask {
  const char* name;
  const char* file;
  bool header;
  std::vector<size_t> columns;
};

std::vector<std::string> spm_split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t pos; (pos = s.find(sep, start)) != std::string::npos; start = pos + 1) out.push_back(s.substr(start, pos - start));
  out.push_back(s.substr(start));
  return out;
}

// Every GLUE dev input against spm_glue_<fixture>.txt; with `decode_check`, decode(ids, true) must
// give the text back (the pair joined by a space). Returns the number of inputs.
size_t check_spm_glue(const Tokenizer& tok, const fs::path& data, const std::string& fixture, bool decode_check) {
  static const SpmGlueTask tasks[] = {{"sst2", "SST-2/dev.tsv", true, {0}},
                                      {"cola", "CoLA/dev.tsv", false, {3}},
                                      {"rte", "RTE/dev.tsv", true, {1, 2}},
                                      {"mrpc", "MRPC/dev.tsv", true, {3, 4}},
                                      {"stsb", "STS-B/dev.tsv", true, {7, 8}}};
  std::vector<std::string> expected = spm_split(spm_slurp(spm_fixture("spm_glue_" + fixture + ".txt")), '\n');
  size_t line = 0, checked = 0, mismatches = 0, decode_mismatches = 0;
  for (const SpmGlueTask& task : tasks) {
    std::vector<std::string> rows = spm_split(spm_slurp(data / "glue" / task.file), '\n');
    if (task.header) rows.erase(rows.begin());
    rows.erase(std::remove(rows.begin(), rows.end(), std::string()), rows.end());
    EXPECT_EQ(expected.at(line++), "# " + std::string(task.name) + " " + std::to_string(rows.size()));
    for (const std::string& row : rows) {
      const std::vector<std::string> fields = spm_split(row, '\t');
      const std::string& a = fields.at(task.columns[0]);
      std::optional<std::string_view> b;
      if (task.columns.size() == 2) b = fields.at(task.columns[1]);
      const Encoding e = tok.encode(a, b);
      ++checked;
      if (spm_fnv32(e.ids) != expected.at(line++) && mismatches++ < 3)
        ADD_FAILURE() << fixture << " mismatch (" << task.name << "): \"" << a << "\" ids " << spm_ids_str(e.ids);
      if (!decode_check) continue;
      const std::string text = b ? a + " " + std::string(*b) : a;
      const std::string decoded = tok.decode(e.ids, true);
      if (decoded != text && decode_mismatches++ < 3)
        ADD_FAILURE() << fixture << " decode: \"" << decoded << "\"\n  expected \"" << text << "\"";
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked << " GLUE inputs (" << fixture << ")";
  EXPECT_EQ(decode_mismatches, 0u) << "decodes of " << checked << " GLUE inputs (" << fixture << ")";
  std::printf("[spm parity] GLUE %-8s %zu/%zu\n", fixture.c_str(), checked - mismatches, checked);
  return checked;
}

TEST(SpmGlue, BpeFolder) {
  PEFT_REQUIRE_SHARED_DATA(data);
  EXPECT_EQ(check_spm_glue(spm_tok("bpe"), data, "bpe", true), 4100u);
}

TEST(SpmGlue, UnigramFolder) {
  PEFT_REQUIRE_SHARED_DATA(data);
  EXPECT_EQ(check_spm_glue(spm_tok("unigram"), data, "unigram", false), 4100u);  // no byte fallback: <unk> loses text
}

TEST(SpmGlue, GgufAsTransformersReadsIt) {
  PEFT_REQUIRE_SHARED_DATA(data);
  EXPECT_EQ(check_spm_glue(spm_tok("gguf"), data, "bpe", true), 4100u);  // the script checks gguf == bpe here
}

// ---- the ModelProto ----------------------------------------------------------------------------

TEST(SpmProto, ParsesAndWritesTheWireFormat) {
  const std::string bytes = spm_slurp(spm_fixture("bpe/tokenizer.model"));
  const SpmModelProto m = SpmModelProto::parse(bytes, "bpe/tokenizer.model");
  ASSERT_EQ(m.pieces.size(), 1500u);
  EXPECT_EQ(m.pieces[0].piece, "<unk>");
  EXPECT_EQ(m.pieces[0].type, SpmModelProto::kUnknown);
  EXPECT_EQ(m.pieces[1].type, SpmModelProto::kControl);
  EXPECT_EQ(m.trainer.model_type, SpmModelProto::kBpe);
  EXPECT_TRUE(m.trainer.byte_fallback);
  EXPECT_EQ(m.normalizer.name, "identity");
  EXPECT_FALSE(m.normalizer.remove_extra_whitespaces);
  const SpmModelProto again = SpmModelProto::parse(m.serialize(), "again");
  ASSERT_EQ(again.pieces.size(), m.pieces.size());
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    EXPECT_EQ(again.pieces[i].piece, m.pieces[i].piece);
    EXPECT_EQ(again.pieces[i].score, m.pieces[i].score);
    EXPECT_EQ(again.pieces[i].type, m.pieces[i].type);
  }
  EXPECT_EQ(again.raw_trainer_spec, m.raw_trainer_spec);
  EXPECT_EQ(again.normalizer.add_dummy_prefix, m.normalizer.add_dummy_prefix);

  // The ModelProto built from the GGUF metadata holds the same pieces, and as a tokenizer.model it
  // tokenizes as the original one.
  const BpeParts parts = spm_gguf_parts();
  const std::string built = peft::tok::gguf_spm_model_proto(parts);
  const SpmModelProto g = SpmModelProto::parse(built, "gguf");
  ASSERT_EQ(g.pieces.size(), m.pieces.size());
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    EXPECT_EQ(g.pieces[i].piece, m.pieces[i].piece);
    EXPECT_EQ(g.pieces[i].score, m.pieces[i].score);
    EXPECT_EQ(g.pieces[i].type, m.pieces[i].type);
  }
  EXPECT_EQ(g.trainer.model_type, SpmModelProto::kBpe);
  EXPECT_TRUE(g.trainer.byte_fallback);
  EXPECT_EQ(g.trainer.unk_id, 0);
  EXPECT_EQ(g.trainer.bos_id, 1);
  EXPECT_EQ(g.trainer.eos_id, 2);
  EXPECT_EQ(g.normalizer.name, "identity");
  EXPECT_TRUE(g.normalizer.add_dummy_prefix);
  EXPECT_FALSE(g.normalizer.remove_extra_whitespaces);
  EXPECT_TRUE(g.normalizer.escape_whitespaces);
  const fs::path dir = spm_scratch() / "from_gguf";
  fs::create_directories(dir);
  spm_write(dir / "tokenizer.model", built);
  const auto tok = peft::tok::load_tokenizer(dir.string());
  const json& inputs = spm_cases()["inputs"];
  const json& results = spm_cases()["results"]["bpe"];
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(spm_encode(*tok, inputs[i]).ids, results[i]["ids"].get<std::vector<int64_t>>()) << inputs[i].dump();
}

TEST(SpmProto, OptionsWithoutAFolder) {
  SpmOptions o;
  o.add_bos_token = false;
  o.add_eos_token = true;
  const auto tok = SpmTokenizer::from_model_file(spm_fixture("bpe/tokenizer.model").string(), o);
  const Encoding e = tok->encode("Hello world");
  ASSERT_FALSE(e.ids.empty());
  EXPECT_EQ(e.ids.back(), 2);
  EXPECT_NE(e.ids.front(), 1);
  EXPECT_EQ(tok->decode(e.ids, true), "Hello world");
  const Encoding p = tok->encode("a", std::string_view("b"));
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), 2), 2);
  EXPECT_EQ(p.type_ids.back(), 1);
  EXPECT_EQ(p.type_ids.front(), 0);
  std::vector<int64_t> ids;
  tok->encode_ids("Hello world", ids);
  EXPECT_EQ(ids, std::vector<int64_t>(e.ids.begin(), e.ids.end() - 1));
  EXPECT_EQ(tok->tokenize("Hello world"), spm_tok("bpe").tokenize("Hello world"));
}

TEST(SpmTokenizerTest, ConcurrentEncodes) {
  const Tokenizer& tok = spm_tok("unigram");
  const json& inputs = spm_cases()["inputs"];
  std::vector<std::vector<int64_t>> want;
  for (const json& in : inputs) want.push_back(spm_encode(tok, in).ids);
  std::atomic<size_t> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (size_t i = 0; i < inputs.size(); ++i)
        if (spm_encode(tok, inputs[i]).ids != want[i]) ++bad;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
}

// ---- errors ------------------------------------------------------------------------------------

TEST(SpmErrors, MissingAndCorruptModelsNameTheFile) {
  const fs::path dir = spm_scratch() / "errors";
  fs::create_directories(dir);
  const std::string missing = (dir / "nope" / "tokenizer.model").string();
  EXPECT_NE(spm_error_of([&] { SpmTokenizer::from_model_file(missing); }).find(missing), std::string::npos);

  const std::string good = spm_slurp(spm_fixture("bpe/tokenizer.model"));
  const std::vector<std::pair<std::string, std::string>> corrupt = {
      {"empty", ""},
      {"text", "this is not a protobuf at all, just some text\n"},
      {"truncated", good.substr(0, good.size() / 2)},
      {"garbage", std::string("\x0a\xff\xff\xff\xff\x0f", 6) + good},
      {"json", "{\"model\": {\"type\": \"BPE\"}}"}};
  for (const auto& [name, bytes] : corrupt) {
    const fs::path folder = dir / name;
    fs::create_directories(folder);
    spm_write(folder / "tokenizer.model", bytes);
    const std::string file = (folder / "tokenizer.model").string();
    const std::string err = spm_error_of([&] { peft::tok::load_tokenizer(folder.string()); });
    EXPECT_NE(err.find(file), std::string::npos) << name << ": " << err;
    EXPECT_NE(spm_error_of([&] { SpmTokenizer::from_model_file(file); }).find(file), std::string::npos) << name;
  }
  // A valid protobuf that SentencePiece rejects: no unknown piece.
  SpmModelProto m = SpmModelProto::parse(good, "good");
  for (auto& p : m.pieces)
    if (p.type == SpmModelProto::kUnknown) p.type = SpmModelProto::kNormal;
  const fs::path no_unk = dir / "no_unk";
  fs::create_directories(no_unk);
  spm_write(no_unk / "tokenizer.model", m.serialize());
  const std::string err = spm_error_of([&] { peft::tok::load_tokenizer(no_unk.string()); });
  EXPECT_NE(err.find((no_unk / "tokenizer.model").string()), std::string::npos) << err;

  // Other tokenizer classes and bad options name tokenizer_config.json.
  const fs::path other = dir / "t5";
  fs::create_directories(other);
  fs::copy_file(spm_fixture("bpe/tokenizer.model"), other / "tokenizer.model", fs::copy_options::overwrite_existing);
  spm_write(other / "tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer"})");
  std::string e = spm_error_of([&] { peft::tok::load_tokenizer(other.string()); });
  EXPECT_NE(e.find("T5Tokenizer"), std::string::npos) << e;
  EXPECT_NE(e.find("tokenizer_config.json"), std::string::npos) << e;
  spm_write(other / "tokenizer_config.json", R"({"legacy": "yes"})");
  e = spm_error_of([&] { peft::tok::load_tokenizer(other.string()); });
  EXPECT_NE(e.find("legacy"), std::string::npos) << e;
  spm_write(other / "tokenizer_config.json", R"({"bos_token": null})");  // add_bos_token with no bos
  e = spm_error_of([&] { peft::tok::load_tokenizer(other.string()); });
  EXPECT_NE(e.find("bos"), std::string::npos) << e;
  spm_write(other / "tokenizer_config.json", R"({"added_tokens_decoder": {"x": {"content": "a"}}})");
  e = spm_error_of([&] { peft::tok::load_tokenizer(other.string()); });
  EXPECT_NE(e.find("added_tokens_decoder"), std::string::npos) << e;

  // Invalid UTF-8 input.
  e = spm_error_of([&] { spm_tok("bpe").encode("ab\xff"); });
  EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;
}

TEST(SpmErrors, GgufMetadata) {
  const BpeParts good = spm_gguf_parts();
  const auto error_with = [&](const std::function<void(BpeParts&)>& edit) {
    BpeParts p = good;
    edit(p);
    return spm_error_of([&] { peft::tok::make_bpe_tokenizer(p); });
  };
  EXPECT_NE(error_with([](BpeParts& p) { p.scores.clear(); }).find("scores"), std::string::npos);
  EXPECT_NE(error_with([](BpeParts& p) { p.token_types.pop_back(); }).find("token_type"), std::string::npos);
  EXPECT_NE(error_with([](BpeParts& p) { p.bos_token_id = 5000; }).find("bos_token_id"), std::string::npos);
  EXPECT_NE(error_with([](BpeParts& p) { p.unk_token_id.reset(); p.token_types[0] = 1; }).find("unknown"), std::string::npos);
  EXPECT_NE(error_with([](BpeParts& p) { p.tokens.clear(); p.scores.clear(); p.token_types.clear(); }).find("empty"),
            std::string::npos);
  EXPECT_NE(error_with([](BpeParts& p) { p.tokens[10] = p.tokens[11]; }).find("GGUF tokenizer (llama)"), std::string::npos);
  EXPECT_NE(error_with([](BpeParts& p) { p.model = "bert"; }).find("bert"), std::string::npos);
  // The unknown token may come from the token types alone.
  BpeParts p = good;
  p.unk_token_id.reset();
  EXPECT_EQ(peft::tok::make_spm_tokenizer(p)->unk_id(), std::optional<int64_t>(0));
}

}  // namespace
