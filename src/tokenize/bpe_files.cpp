// Building a BpeTokenizer from vocab.json + merges.txt (or GPT-2's encoder.json + vocab.bpe), as
// transformers' GPT2TokenizerFast / RobertaTokenizerFast do through their slow tokenizers.
#include <set>

#include "peft/error.h"
#include "tokenize/bpe_impl.h"
#include "tokenize/files.h"

namespace peft::tok {
namespace {

// merges.txt as the slow tokenizer reads it: text.split("\n")[1:-1] (the first line is the
// "#version" header and is skipped whatever it says; so is what follows the last newline), each
// line split on whitespace; a repeated pair keeps its first rank.
std::vector<std::pair<std::string, std::string>> bpe_files_merges(const std::string& path) {
  const std::string text = read_file(path, "BPE merges");
  std::vector<std::string> lines;
  for (size_t start = 0;;) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // drops the part after the last newline
    lines.emplace_back(text, start, end - start);
    start = end + 1;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> parts;
    const std::string& line = lines[i];
    for (size_t p = 0; p < line.size();) {
      // Python's str.split(): runs of ASCII whitespace separate (tokens hold no raw whitespace).
      while (p < line.size() && (line[p] == ' ' || (line[p] >= '\t' && line[p] <= '\r'))) ++p;
      size_t q = p;
      while (q < line.size() && !(line[q] == ' ' || (line[q] >= '\t' && line[q] <= '\r'))) ++q;
      if (q > p) parts.emplace_back(line, p, q - p);
      p = q;
    }
    if (parts.size() != 2) fail("{}: line {} is not a merge of two tokens: '{}'", path, i + 1, line);
    std::pair<std::string, std::string> merge(std::move(parts[0]), std::move(parts[1]));
    if (seen.insert(merge).second) merges.push_back(std::move(merge));
  }
  return merges;
}

Vocab bpe_files_vocab(const std::string& path) {
  const nlohmann::json j = read_json(path, "BPE vocabulary");
  if (!j.is_object() || j.empty()) fail("{}: not a JSON object of token -> id", path);
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: id of '{}' is not an integer", path, it.key());
    entries.emplace_back(it.key(), it.value().get<int64_t>());
  }
  return Vocab::from_entries(std::move(entries), path);
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                                       const BpeFilesOptions& o) {
  const bool roberta = o.flavor == BpeFilesOptions::Flavor::Roberta;
  const auto name = [](const std::optional<std::string>& given, const char* fallback) {
    return given ? given : (fallback ? std::optional<std::string>(fallback) : std::nullopt);
  };
  const std::optional<std::string> bos = name(o.bos_token, roberta ? "<s>" : "<|endoftext|>"),
                                   eos = name(o.eos_token, roberta ? "</s>" : "<|endoftext|>"),
                                   unk = name(o.unk_token, roberta ? "<unk>" : "<|endoftext|>"),
                                   pad = name(o.pad_token, roberta ? "<pad>" : nullptr),
                                   cls = name(o.cls_token, roberta ? "<s>" : nullptr),
                                   sep = name(o.sep_token, roberta ? "</s>" : nullptr),
                                   mask = name(o.mask_token, roberta ? "<mask>" : nullptr);
  Vocab vocab = bpe_files_vocab(vocab_json);
  // transformers registers the special tokens as added tokens (in this order, as its conversion
  // dumps them); a name missing from the vocabulary gets the next free id.
  std::vector<AddedToken> added;
  int64_t next_id = static_cast<int64_t>(vocab.id_bound());
  for (const std::optional<std::string>* t : {&bos, &pad, &eos, &unk, &cls, &sep, &mask}) {
    if (!*t || (*t)->empty()) continue;
    bool listed = false;
    for (const AddedToken& a : added) listed |= a.content == **t;
    if (listed) continue;
    const bool is_mask = t == &mask && roberta;  // RoBERTa's <mask> swallows the space before it
    AddedToken a{**t, vocab.find(**t).value_or(next_id), true, !is_mask, is_mask, false};
    if (a.id == next_id) ++next_id;
    added.push_back(std::move(a));
  }
  PreTokenizerStep byte_level;
  byte_level.add_prefix_space = o.add_prefix_space;
  TemplateProcessor processor;
  if (roberta) {
    const auto cls_id = cls ? vocab.find(*cls) : std::nullopt, sep_id = sep ? vocab.find(*sep) : std::nullopt;
    if (!cls_id || !sep_id) fail("{}: RoBERTa needs its cls and sep tokens in the vocabulary", vocab_json);
    processor = roberta_template(*cls_id, *sep_id);
  }
  auto impl = std::make_unique<Impl>(BpeModel(std::move(vocab), bpe_files_merges(merges_txt), {}, merges_txt),
                                     BpePreTokenizer({byte_level}), std::move(added), std::move(processor),
                                     BpeDecoder::byte_level());
  impl->set_specials(bos, eos, unk, pad, cls, sep, mask);
  impl->clean_up_tokenization_spaces = o.clean_up_tokenization_spaces;
  impl->model_max_length = o.model_max_length;
  impl->padding_side = o.padding_side;
  return Impl::make(std::move(impl));
}

}  // namespace peft::tok
