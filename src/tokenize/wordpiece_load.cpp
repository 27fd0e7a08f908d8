// Building a WordPieceTokenizer from vocab.txt or from a `tokenizers` tokenizer.json.
#include "peft/error.h"
#include "tokenize/files.h"
#include "tokenize/tokenizer_json.h"
#include "tokenize/wordpiece_impl.h"

namespace peft::tok {
namespace {

using nlohmann::json;
// Declarations, not a using-directive: unity builds share this anonymous namespace across files.
using tokenizer_json::get_or;
using tokenizer_json::member;
using tokenizer_json::parse_added_tokens;
using tokenizer_json::parse_template_processing;
using tokenizer_json::processing_token_id;
using tokenizer_json::type_of;

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

template <typename Options>
void finish_specials(WordPieceTokenizer::Impl& impl, const Options& o) {
  impl.cls = impl.find(o.cls_token);
  impl.sep = impl.find(o.sep_token);
  impl.pad = impl.find(o.pad_token);
  impl.mask = impl.find(o.mask_token);
  if (o.bos_token) impl.bos = impl.find(*o.bos_token);
  if (o.eos_token) impl.eos = impl.find(*o.eos_token);
  impl.clean_up_tokenization_spaces = o.clean_up_tokenization_spaces;
}

// The decoder: WordPiece (prefix, cleanup) or none.
void parse_wordpiece_decoder(const json& j, const std::string& path, WordPieceTokenizer::Impl& impl) {
  if (j.is_null()) {
    impl.decoder_prefix.reset();
    impl.decoder_cleanup = false;
    return;
  }
  const std::string type = type_of(j, path, "decoder");
  if (type != "WordPiece")
    fail("{}: unsupported decoder type '{}' (WordPiece supports the WordPiece decoder or none)", path, type);
  impl.decoder_prefix = get_or<std::string>(j, "prefix", "##", path);
  impl.decoder_cleanup = get_or(j, "cleanup", true, path);
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

TemplateProcessor parse_post_processor(const json& j, const std::string& path) {
  if (j.is_null()) return TemplateProcessor();
  const std::string type = type_of(j, path, "post_processor");
  if (type == "BertProcessing")
    return TemplateProcessor::bert(processing_token_id(j, "cls", path), processing_token_id(j, "sep", path));
  if (type == "TemplateProcessing") return parse_template_processing(j, path);
  fail("{}: unsupported post_processor type '{}' (WordPiece supports TemplateProcessing, "
       "BertProcessing or none)",
       path, type);
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
  finish_specials(*impl, options);
  impl->decoder_prefix = options.continuing_subword_prefix;
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
  finish_specials(*impl, options);
  parse_wordpiece_decoder(member(j, "decoder"), path, *impl);
  impl->model_max_length = options.model_max_length;
  return WordPieceTokenizer::Impl::make(std::move(impl));
}

}  // namespace peft::tok
