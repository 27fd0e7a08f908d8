// Building a BpeTokenizer from a `tokenizers` tokenizer.json.
#include "peft/error.h"
#include "tokenize/bpe_impl.h"
#include "tokenize/files.h"
#include "tokenize/tokenizer_json.h"

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

using MergeList = std::vector<std::pair<std::string, std::string>>;

// "left right" strings (the older format) or ["left", "right"] pairs.
MergeList bpe_json_merges(const json& merges, const std::string& path) {
  MergeList out;
  if (merges.is_null()) return out;
  if (!merges.is_array()) fail("{}: model.merges is not a list", path);
  out.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail("{}: merge '{}' is not two tokens separated by one space", path, s);
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail("{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", path, m.dump());
    }
  }
  return out;
}

BpeModel bpe_json_model(const json& model, const std::string& path) {
  const json& vocab_json = member(model, "vocab");
  if (!vocab_json.is_object() || vocab_json.empty()) fail("{}: model.vocab is missing or empty", path);
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(vocab_json.size());
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: vocab id of '{}' is not an integer", path, it.key());
    entries.emplace_back(it.key(), it.value().get<int64_t>());
  }
  Vocab vocab = Vocab::from_entries(std::move(entries), path);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!get_or<std::string>(model, key, "", path).empty())
      fail("{}: BPE model.{} is not supported (byte-level BPE has none)", path, key);
  if (get_or<double>(model, "dropout", 0.0, path) != 0.0) fail("{}: BPE dropout is not supported", path);
  BpeModelOptions o;
  if (auto unk = get_or<std::string>(model, "unk_token", "", path); !unk.empty()) o.unk_id = vocab.find(unk);
  o.fuse_unk = get_or(model, "fuse_unk", false, path);
  o.byte_fallback = get_or(model, "byte_fallback", false, path);
  o.ignore_merges = get_or(model, "ignore_merges", false, path);
  return BpeModel(std::move(vocab), bpe_json_merges(member(model, "merges"), path), o, path);
}

void bpe_json_check_normalizer(const json& j, const std::string& path) {
  if (j.is_null()) return;
  const std::string type = type_of(j, path, "normalizer");
  if (type == "Sequence" && member(j, "normalizers").is_array() && member(j, "normalizers").empty()) return;
  fail("{}: unsupported normalizer type '{}' (byte-level BPE supports none or an empty Sequence)", path, type);
}

void bpe_json_pre_step(const json& j, const std::string& path, std::vector<PreTokenizerStep>& steps) {
  const std::string type = type_of(j, path, "pre_tokenizer");
  PreTokenizerStep step;
  if (type == "Sequence") {
    const json& list = member(j, "pretokenizers");
    if (!list.is_array()) fail("{}: pre_tokenizer Sequence has no 'pretokenizers' list", path);
    for (const json& item : list) bpe_json_pre_step(item, path, steps);
    return;
  }
  if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::ByteLevel;
    step.add_prefix_space = get_or(j, "add_prefix_space", true, path);
    step.use_regex = get_or(j, "use_regex", true, path);
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Digits;
    step.individual_digits = get_or(j, "individual_digits", false, path);
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Split;
    const std::string regex = get_or<std::string>(member(j, "pattern"), "Regex", "", path);
    bool known = false;
    for (SplitRegex r : {SplitRegex::Gpt2, SplitRegex::Llama3, SplitRegex::Qwen2}) {
      if (regex == split_regex_pattern(r)) {
        step.regex = r;
        known = true;
      }
    }
    if (!known)
      fail("{}: unsupported Split pattern {} (supported: the GPT-2, Llama-3 and Qwen2 regexes)", path,
           member(j, "pattern").dump());
    if (get_or<std::string>(j, "behavior", "", path) != "Isolated" || get_or(j, "invert", false, path))
      fail("{}: Split pre-tokenizer must have behavior 'Isolated' and invert false", path);
  } else {
    fail("{}: unsupported pre_tokenizer type '{}' (byte-level BPE supports ByteLevel, Split, Digits, Sequence)",
         path, type);
  }
  steps.push_back(step);
}

BpePreTokenizer bpe_json_pre_tokenizer(const json& j, const std::string& path, std::optional<bool> add_prefix_space) {
  if (j.is_null()) fail("{}: a BPE tokenizer without pre_tokenizer is not byte-level (unsupported)", path);
  std::vector<PreTokenizerStep> steps;
  bpe_json_pre_step(j, path, steps);
  // transformers' fast tokenizers force their add_prefix_space onto a top-level ByteLevel.
  if (add_prefix_space && type_of(j, path, "pre_tokenizer") == "ByteLevel") steps[0].add_prefix_space = *add_prefix_space;
  bool byte_level = false;
  for (const PreTokenizerStep& s : steps) byte_level |= s.kind == PreTokenizerStep::ByteLevel;
  if (!byte_level) fail("{}: BPE pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)", path);
  return BpePreTokenizer(std::move(steps));
}

struct BpePostProcessor {
  TemplateProcessor processor;
  std::optional<int64_t> cls, sep;  // of RobertaProcessing / BertProcessing
};

void bpe_json_post_step(const json& j, const std::string& path, BpePostProcessor& out, int& templates) {
  const std::string type = type_of(j, path, "post_processor");
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json& list = member(j, "processors");
    if (!list.is_array()) fail("{}: post_processor Sequence has no 'processors' list", path);
    for (const json& item : list) bpe_json_post_step(item, path, out, templates);
    return;
  }
  if (++templates > 1) fail("{}: post_processor Sequence with more than one template is not supported", path);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    out.cls = processing_token_id(j, "cls", path);
    out.sep = processing_token_id(j, "sep", path);
    out.processor = type == "RobertaProcessing" ? roberta_template(*out.cls, *out.sep)
                                                : TemplateProcessor::bert(*out.cls, *out.sep);
  } else if (type == "TemplateProcessing") {
    out.processor = parse_template_processing(j, path);
  } else {
    fail("{}: unsupported post_processor type '{}' (byte-level BPE supports RobertaProcessing, "
         "TemplateProcessing, BertProcessing, ByteLevel, Sequence or none)",
         path, type);
  }
}

void bpe_json_decoder_step(const json& j, const std::string& path, std::vector<BpeDecoder::Step>& steps) {
  const std::string type = type_of(j, path, "decoder");
  if (type == "Sequence") {
    const json& list = member(j, "decoders");
    if (!list.is_array()) fail("{}: decoder Sequence has no 'decoders' list", path);
    for (const json& item : list) bpe_json_decoder_step(item, path, steps);
  } else if (type == "ByteLevel") {
    steps.push_back({BpeDecoder::Step::ByteLevel, {}, {}});
  } else if (type == "ByteFallback") {
    steps.push_back({BpeDecoder::Step::ByteFallback, {}, {}});
  } else if (type == "Fuse") {
    steps.push_back({BpeDecoder::Step::Fuse, {}, {}});
  } else if (type == "Replace" && member(j, "pattern").contains("String")) {
    steps.push_back({BpeDecoder::Step::Replace, get_or<std::string>(member(j, "pattern"), "String", "", path),
                     get_or<std::string>(j, "content", "", path)});
  } else {
    fail("{}: unsupported decoder type '{}' (byte-level BPE supports ByteLevel, ByteFallback, Fuse, Replace with "
         "a string, Sequence or none)",
         path, type);
  }
}

BpeDecoder bpe_json_decoder(const json& j, const std::string& path) {
  if (j.is_null()) return BpeDecoder();
  std::vector<BpeDecoder::Step> steps;
  bpe_json_decoder_step(j, path, steps);
  return BpeDecoder(std::move(steps));
}

}  // namespace

TemplateProcessor bos_eos_template(std::optional<int64_t> bos, std::optional<int64_t> eos, bool add_bos, bool add_eos,
                                   const std::string& source) {
  using P = TemplatePiece;
  if (add_bos && !bos) fail("{}: add_bos_token is set but there is no bos token", source);
  if (add_eos && !eos) fail("{}: add_eos_token is set but there is no eos token", source);
  // transformers' LlamaTokenizerFast.update_post_processor: [bos] $A [eos], then [bos:1] $B:1 [eos:1].
  std::vector<P> single;
  if (add_bos) single.push_back({P::Special, {*bos}, 0});
  single.push_back({P::SequenceA, {}, 0});
  if (add_eos) single.push_back({P::Special, {*eos}, 0});
  std::vector<P> pair = single;
  if (add_bos) pair.push_back({P::Special, {*bos}, 1});
  pair.push_back({P::SequenceB, {}, 1});
  if (add_eos) pair.push_back({P::Special, {*eos}, 1});
  return TemplateProcessor(std::move(single), std::move(pair));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path, const BpeJsonOptions& options) {
  return bpe_from_json(read_json(path, "tokenizer"), path, options);
}

std::unique_ptr<BpeTokenizer> bpe_from_json(const nlohmann::json& j, const std::string& path,
                                            const BpeJsonOptions& options) {
  if (!j.is_object()) fail("{}: not a tokenizer.json object", path);
  const json& model = member(j, "model");
  if (!model.is_object()) fail("{}: no model", path);
  const std::string type = model.contains("type") ? type_of(model, path, "model") : "BPE";  // older files omit it
  if (type != "BPE") fail("{}: unsupported model type '{}' for a BPE tokenizer", path, type);
  bpe_json_check_normalizer(member(j, "normalizer"), path);
  BpePostProcessor post;
  int templates = 0;
  if (!member(j, "post_processor").is_null()) bpe_json_post_step(member(j, "post_processor"), path, post, templates);

  auto impl = std::make_unique<BpeTokenizer::Impl>(
      bpe_json_model(model, path), bpe_json_pre_tokenizer(member(j, "pre_tokenizer"), path, options.add_prefix_space),
      parse_added_tokens(member(j, "added_tokens"), path), std::move(post.processor),
      bpe_json_decoder(member(j, "decoder"), path));
  impl->set_specials(options.bos_token, options.eos_token, options.unk_token, options.pad_token, options.cls_token,
                     options.sep_token, options.mask_token);
  if (!impl->cls) impl->cls = post.cls;
  if (!impl->sep) impl->sep = post.sep;
  if (!impl->unk) impl->unk = impl->model.unk_id();
  if (options.add_bos_token || options.add_eos_token)
    impl->processor = bos_eos_template(impl->bos, impl->eos, options.add_bos_token.value_or(false),
                                       options.add_eos_token.value_or(false), path);
  impl->clean_up_tokenization_spaces = options.clean_up_tokenization_spaces;
  impl->model_max_length = options.model_max_length;
  impl->padding_side = options.padding_side;
  return BpeTokenizer::Impl::make(std::move(impl));
}

}  // namespace peft::tok
