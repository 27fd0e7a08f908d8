// Building a WordPieceTokenizer from vocab.txt or from a `tokenizers` tokenizer.json.
#include "peft/error.h"
#include "tokenize/files.h"
#include "tokenize/wordpiece_impl.h"

namespace peft::tok {
namespace {

using nlohmann::json;

// Lines as Python's text mode reads them: \n, \r\n and \r all end a line.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') continue;
    lines.emplace_back(text, start, i - start);
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < text.size()) lines.emplace_back(text, start);
  return lines;
}

void finish_specials(WordPieceTokenizer::Impl& impl, const std::string& cls, const std::string& sep,
                     const std::string& pad, const std::string& mask) {
  impl.cls = impl.find(cls);
  impl.sep = impl.find(sep);
  impl.pad = impl.find(pad);
  impl.mask = impl.find(mask);
}

const json& member(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

// json helpers that name the file and the key on type errors.
template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: '{}' has the wrong type ({})", path, key, it->type_name());
  }
}

std::string type_of(const json& j, const std::string& path, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail("{}: {} has no 'type'", path, what);
  return j["type"].get<std::string>();
}

BertNormalizer parse_normalizer(const json& j, const std::string& path,
                                const std::optional<TokenizerJsonOptions::BertNormalizerOverride>& override) {
  if (j.is_null()) return BertNormalizer::identity();
  const std::string type = type_of(j, path, "normalizer");
  if (type != "BertNormalizer")
    fail("{}: unsupported normalizer type '{}' (WordPiece supports BertNormalizer or none)", path, type);
  BertNormalizerOptions o;
  o.clean_text = get_or(j, "clean_text", true, path);
  o.handle_chinese_chars = get_or(j, "handle_chinese_chars", true, path);
  if (j.contains("strip_accents") && !j["strip_accents"].is_null())
    o.strip_accents = get_or(j, "strip_accents", false, path);
  o.lowercase = get_or(j, "lowercase", true, path);
  if (override) {
    o.lowercase = override->lowercase;
    o.strip_accents = override->strip_accents;
    o.handle_chinese_chars = override->tokenize_chinese_chars;
  }
  return BertNormalizer(o);
}

bool parse_pre_tokenizer(const json& j, const std::string& path) {
  if (j.is_null()) return false;
  const std::string type = type_of(j, path, "pre_tokenizer");
  if (type != "BertPreTokenizer")
    fail("{}: unsupported pre_tokenizer type '{}' (WordPiece supports BertPreTokenizer or none)", path, type);
  return true;
}

// ["[SEP]", 102] as BertProcessing stores its tokens.
int64_t processing_token_id(const json& j, const char* key, const std::string& path) {
  const json& t = member(j, key);
  if (!t.is_array() || t.size() != 2 || !t[1].is_number_integer())
    fail("{}: post_processor '{}' must be [token, id]", path, key);
  return t[1].get<int64_t>();
}

std::vector<TemplatePiece> parse_template(const json& items, const json& specials, const std::string& path) {
  std::vector<TemplatePiece> pieces;
  if (!items.is_array()) fail("{}: TemplateProcessing template is not a list", path);
  for (const json& item : items) {
    if (item.contains("Sequence")) {
      const json& s = item["Sequence"];
      const std::string id = get_or<std::string>(s, "id", "A", path);
      if (id != "A" && id != "B") fail("{}: unknown template sequence '{}'", path, id);
      pieces.push_back({id == "A" ? TemplatePiece::SequenceA : TemplatePiece::SequenceB, {},
                        get_or<int64_t>(s, "type_id", 0, path)});
    } else if (item.contains("SpecialToken")) {
      const json& s = item["SpecialToken"];
      const std::string name = get_or<std::string>(s, "id", "", path);
      if (!specials.is_object() || !specials.contains(name))
        fail("{}: template special token '{}' is not in special_tokens", path, name);
      pieces.push_back({TemplatePiece::Special, get_or<std::vector<int64_t>>(specials[name], "ids", {}, path),
                        get_or<int64_t>(s, "type_id", 0, path)});
    } else {
      fail("{}: unknown TemplateProcessing item {}", path, item.dump());
    }
  }
  return pieces;
}

TemplateProcessor parse_post_processor(const json& j, const std::string& path) {
  if (j.is_null()) return TemplateProcessor();
  const std::string type = type_of(j, path, "post_processor");
  if (type == "BertProcessing")
    return TemplateProcessor::bert(processing_token_id(j, "cls", path), processing_token_id(j, "sep", path));
  if (type == "TemplateProcessing") {
    const json specials = j.value("special_tokens", json::object());
    return TemplateProcessor(parse_template(member(j, "single"), specials, path),
                             parse_template(member(j, "pair"), specials, path));
  }
  fail("{}: unsupported post_processor type '{}' (WordPiece supports TemplateProcessing, "
       "BertProcessing or none)",
       path, type);
}

std::vector<AddedToken> parse_added_tokens(const json& j, const std::string& path) {
  std::vector<AddedToken> tokens;
  if (j.is_null()) return tokens;
  if (!j.is_array()) fail("{}: added_tokens is not a list", path);
  for (const json& t : j) {
    AddedToken a;
    a.content = get_or<std::string>(t, "content", "", path);
    a.id = get_or<int64_t>(t, "id", -1, path);
    if (a.content.empty() || a.id < 0) fail("{}: added token without content or id: {}", path, t.dump());
    a.special = get_or(t, "special", false, path);
    a.normalized = get_or(t, "normalized", !a.special, path);
    a.lstrip = get_or(t, "lstrip", false, path);
    a.rstrip = get_or(t, "rstrip", false, path);
    if (get_or(t, "single_word", false, path))
      fail("{}: added token '{}' has single_word=true, which is not supported", path, a.content);
    tokens.push_back(std::move(a));
  }
  return tokens;
}

}  // namespace

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_vocab_file(const std::string& vocab_path,
                                                                        const WordPieceOptions& options) {
  std::vector<std::string> lines = split_lines(read_file(vocab_path, "vocabulary"));
  if (lines.empty()) fail("vocabulary {} is empty", vocab_path);
  Vocab vocab = Vocab::from_list(std::move(lines));
  const auto require = [&](const std::string& token, const char* role) {
    auto id = vocab.find(token);
    if (!id) fail("vocabulary {} has no {} token '{}'", vocab_path, role, token);
    return *id;
  };
  const int64_t unk = require(options.unk_token, "unknown");
  const int64_t cls = require(options.cls_token, "classifier");
  const int64_t sep = require(options.sep_token, "separator");
  // transformers registers the special tokens as added tokens matched in raw text.
  std::vector<AddedToken> added;
  for (const std::string* t : {&options.pad_token, &options.unk_token, &options.cls_token,
                               &options.sep_token, &options.mask_token}) {
    if (auto id = vocab.find(*t); id && !t->empty()) added.push_back({*t, *id, true, false, false, false});
  }
  BertNormalizerOptions n;
  n.clean_text = options.clean_text;
  n.handle_chinese_chars = options.tokenize_chinese_chars;
  n.strip_accents = options.strip_accents;
  n.lowercase = options.lowercase;
  auto impl = std::make_unique<Impl>(
      BertNormalizer(n), true,
      WordPieceModel(std::move(vocab), unk, options.continuing_subword_prefix, options.max_input_chars_per_word),
      std::move(added), TemplateProcessor::bert(cls, sep));
  finish_specials(*impl, options.cls_token, options.sep_token, options.pad_token, options.mask_token);
  impl->model_max_length = options.model_max_length;
  return WordPieceTokenizer::Impl::make(std::move(impl));
}

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_tokenizer_json(const std::string& path,
                                                                            const TokenizerJsonOptions& options) {
  return wordpiece_from_json(read_json(path, "tokenizer"), path, options);
}

std::unique_ptr<WordPieceTokenizer> wordpiece_from_json(const nlohmann::json& j, const std::string& path,
                                                        const TokenizerJsonOptions& options) {
  if (!j.is_object()) fail("{}: not a tokenizer.json object", path);
  const json& model = member(j, "model");
  const std::string type = type_of(model, path, "model");
  if (type != "WordPiece") fail("{}: unsupported model type '{}' for a WordPiece tokenizer", path, type);
  const json& vocab_json = member(model, "vocab");
  if (!vocab_json.is_object() || vocab_json.empty()) fail("{}: model.vocab is missing or empty", path);
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(vocab_json.size());
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: vocab id of '{}' is not an integer", path, it.key());
    entries.emplace_back(it.key(), it.value().get<int64_t>());
  }
  Vocab vocab = Vocab::from_entries(std::move(entries), path);
  const std::string unk_token = get_or<std::string>(model, "unk_token", "[UNK]", path);
  const auto unk = vocab.find(unk_token);
  if (!unk) fail("{}: unk_token '{}' is not in the vocabulary", path, unk_token);
  const json& normalizer = member(j, "normalizer");
  const bool bert_normalizer = normalizer.is_object() && normalizer.value("type", "") == "BertNormalizer";

  auto impl = std::make_unique<WordPieceTokenizer::Impl>(
      parse_normalizer(normalizer, path, bert_normalizer ? options.bert_normalizer : std::nullopt),
      parse_pre_tokenizer(member(j, "pre_tokenizer"), path),
      WordPieceModel(std::move(vocab), *unk, get_or<std::string>(model, "continuing_subword_prefix", "##", path),
                     get_or<size_t>(model, "max_input_chars_per_word", 100, path)),
      parse_added_tokens(member(j, "added_tokens"), path),
      parse_post_processor(member(j, "post_processor"), path));
  finish_specials(*impl, options.cls_token, options.sep_token, options.pad_token, options.mask_token);
  impl->model_max_length = options.model_max_length;
  return WordPieceTokenizer::Impl::make(std::move(impl));
}

}  // namespace peft::tok
