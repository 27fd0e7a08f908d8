// load_tokenizer(dir): what transformers' AutoTokenizer.from_pretrained(dir) builds for the
// tokenizer kinds we support.
#include <filesystem>
#include <set>

#include "peft/error.h"
#include "peft/tokenize/bpe.h"
#include "peft/tokenize/wordpiece.h"
#include "tokenize/bpe_impl.h"
#include "tokenize/files.h"
#include "tokenize/spm_impl.h"
#include "tokenize/wordpiece_impl.h"

namespace peft::tok {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_optional_json(const fs::path& path, const char* what) {
  if (!fs::exists(path)) return json::object();
  json j = read_json(path.string(), what);
  if (!j.is_object()) fail("{} {} is not a JSON object", what, path.string());
  return j;
}

// A special token entry: "[CLS]" or {"content": "[CLS]", ...}.
std::optional<std::string> token_name(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

template <typename T>
std::optional<T> optional_value(const json& config, const char* key, const fs::path& file) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: '{}' has the wrong type ({})", file.string(), key, it->type_name());
  }
}

// transformers stores "no limit" as a huge number (int(1e30)).
std::optional<size_t> max_length_of(const json& config) {
  auto it = config.find("model_max_length");
  if (it == config.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (v <= 0 || v > 1e15) return std::nullopt;
  return static_cast<size_t>(v);
}

// The fast tokenizers that rebuild tokenizer.json's BertNormalizer from their own arguments.
bool rebuilds_bert_normalizer(const json& config, const json& model_config) {
  static const std::set<std::string> classes = {
      "BertTokenizer",     "ConvBertTokenizer", "DistilBertTokenizer", "ElectraTokenizer",
      "FunnelTokenizer",   "LayoutLMTokenizer", "LxmertTokenizer",     "MobileBertTokenizer",
      "RealmTokenizer",    "RetriBertTokenizer", "SqueezeBertTokenizer"};
  static const std::set<std::string> model_types = {"bert",    "convbert", "distilbert", "electra",
                                                    "funnel",  "layoutlm", "lxmert",     "mobilebert",
                                                    "realm",   "retribert", "squeezebert"};
  if (auto it = config.find("tokenizer_class"); it != config.end() && it->is_string()) {
    std::string name = it->get<std::string>();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, "Fast") == 0) name.resize(name.size() - 4);
    return classes.count(name) > 0;
  }
  auto it = model_config.find("model_type");
  return it != model_config.end() && it->is_string() && model_types.count(it->get<std::string>()) > 0;
}

// tokenizer_class without "Fast" ("" when unset).
std::string tokenizer_class(const json& config) {
  auto it = config.find("tokenizer_class");
  if (it == config.end() || !it->is_string()) return "";
  std::string name = it->get<std::string>();
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Fast") == 0) name.resize(name.size() - 4);
  return name;
}

// A top-level ByteLevel's add_prefix_space as transformers' fast tokenizers set it: the config's
// value, false when absent; null keeps the file's.
std::optional<bool> prefix_space_of(const json& config, const fs::path& file) {
  auto it = config.find("add_prefix_space");
  if (it == config.end()) return false;
  return optional_value<bool>(config, "add_prefix_space", file);
}

// tokenizer_config.json's padding_side, else the class's default.
PaddingSide padding_side_of(const json& config, const fs::path& file, const char* fallback = "right") {
  const std::string side = optional_value<std::string>(config, "padding_side", file).value_or(fallback);
  if (side != "right" && side != "left") fail("{}: padding_side '{}' is neither 'right' nor 'left'", file.string(), side);
  return side == "left" ? PaddingSide::Left : PaddingSide::Right;
}

// vocab.json + merges.txt: RoBERTa or GPT-2, by tokenizer class, model type, else vocabulary.
BpeFilesOptions::Flavor bpe_flavor(const json& config, const json& model_config, const fs::path& vocab) {
  static const std::set<std::string> roberta = {"RobertaTokenizer", "BartTokenizer", "LongformerTokenizer",
                                                "CamembertTokenizer", "XLMRobertaTokenizer"};
  static const std::set<std::string> roberta_types = {"roberta", "bart", "longformer", "camembert"};
  using F = BpeFilesOptions::Flavor;
  if (const std::string c = tokenizer_class(config); !c.empty()) return roberta.count(c) ? F::Roberta : F::Gpt2;
  if (auto it = model_config.find("model_type"); it != model_config.end() && it->is_string())
    return roberta_types.count(it->get<std::string>()) ? F::Roberta : F::Gpt2;
  const json v = read_json(vocab.string(), "BPE vocabulary");
  return v.is_object() && v.contains("<s>") && v.contains("</s>") && v.contains("<mask>") ? F::Roberta : F::Gpt2;
}

std::unique_ptr<Tokenizer> load_bpe_json(const json& j, const fs::path& path, const json& config,
                                         const fs::path& config_path) {
  BpeJsonOptions o;
  o.model_max_length = max_length_of(config);
  o.padding_side = padding_side_of(config, config_path);
  o.bos_token = token_name(config, "bos_token");
  o.eos_token = token_name(config, "eos_token");
  o.unk_token = token_name(config, "unk_token");
  o.pad_token = token_name(config, "pad_token");
  o.cls_token = token_name(config, "cls_token");
  o.sep_token = token_name(config, "sep_token");
  o.mask_token = token_name(config, "mask_token");
  o.clean_up_tokenization_spaces =
      optional_value<bool>(config, "clean_up_tokenization_spaces", config_path).value_or(false);
  o.add_prefix_space = prefix_space_of(config, config_path);
  const std::string cls = tokenizer_class(config);
  if (cls == "LlamaTokenizer" || cls == "CodeLlamaTokenizer") {  // their __init__ rebuilds the template
    o.padding_side = padding_side_of(config, config_path, "left");
    o.add_bos_token = optional_value<bool>(config, "add_bos_token", config_path).value_or(true);
    o.add_eos_token = optional_value<bool>(config, "add_eos_token", config_path).value_or(false);
  }
  return bpe_from_json(j, path.string(), o);
}

std::unique_ptr<Tokenizer> load_bpe_files(const fs::path& vocab, const fs::path& merges, const json& config,
                                          const json& model_config, const fs::path& config_path) {
  BpeFilesOptions o;
  o.flavor = bpe_flavor(config, model_config, vocab);
  o.add_prefix_space = optional_value<bool>(config, "add_prefix_space", config_path).value_or(false);
  o.clean_up_tokenization_spaces =
      optional_value<bool>(config, "clean_up_tokenization_spaces", config_path).value_or(false);
  o.model_max_length = max_length_of(config);
  o.padding_side = padding_side_of(config, config_path);
  o.bos_token = token_name(config, "bos_token");
  o.eos_token = token_name(config, "eos_token");
  o.unk_token = token_name(config, "unk_token");
  o.pad_token = token_name(config, "pad_token");
  o.cls_token = token_name(config, "cls_token");
  o.sep_token = token_name(config, "sep_token");
  o.mask_token = token_name(config, "mask_token");
  return BpeTokenizer::from_files(vocab.string(), merges.string(), o);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (!fs::is_directory(dir)) fail("tokenizer folder {} does not exist", model_dir);
  const fs::path config_path = dir / "tokenizer_config.json";
  json config = read_optional_json(config_path, "tokenizer config");
  // special_tokens_map.json's names win over tokenizer_config.json's, as in transformers.
  const json special_map = read_optional_json(dir / "special_tokens_map.json", "special tokens map");
  for (auto it = special_map.begin(); it != special_map.end(); ++it) config[it.key()] = it.value();

  WordPieceOptions wp;
  wp.unk_token = token_name(config, "unk_token").value_or(wp.unk_token);
  wp.cls_token = token_name(config, "cls_token").value_or(wp.cls_token);
  wp.sep_token = token_name(config, "sep_token").value_or(wp.sep_token);
  wp.pad_token = token_name(config, "pad_token").value_or(wp.pad_token);
  wp.mask_token = token_name(config, "mask_token").value_or(wp.mask_token);
  wp.lowercase = optional_value<bool>(config, "do_lower_case", config_path).value_or(true);
  wp.strip_accents = optional_value<bool>(config, "strip_accents", config_path);
  wp.tokenize_chinese_chars = optional_value<bool>(config, "tokenize_chinese_chars", config_path).value_or(true);
  wp.model_max_length = max_length_of(config);

  wp.bos_token = token_name(config, "bos_token");
  wp.eos_token = token_name(config, "eos_token");
  wp.clean_up_tokenization_spaces =
      optional_value<bool>(config, "clean_up_tokenization_spaces", config_path).value_or(true);
  const json model_config = read_optional_json(dir / "config.json", "model config");

  const fs::path json_path = dir / "tokenizer.json";
  if (fs::exists(json_path)) {
    const json j = read_json(json_path.string(), "tokenizer");
    std::string type;
    if (j.is_object() && j.contains("model") && j["model"].is_object()) {
      const json& model = j["model"];
      if (model.contains("type") && model["type"].is_string()) type = model["type"].get<std::string>();
      else if (model.contains("merges")) type = "BPE";  // older files leave BPE's type out
    }
    if (type == "BPE") return load_bpe_json(j, json_path, config, config_path);
    if (type != "WordPiece")
      fail("{}: unsupported model type '{}' (supported: WordPiece, BPE)", json_path.string(), type);
    TokenizerJsonOptions options;
    options.model_max_length = wp.model_max_length;
    options.cls_token = wp.cls_token;
    options.sep_token = wp.sep_token;
    options.pad_token = wp.pad_token;
    options.mask_token = wp.mask_token;
    options.bos_token = wp.bos_token;
    options.eos_token = wp.eos_token;
    options.clean_up_tokenization_spaces = wp.clean_up_tokenization_spaces;
    if (rebuilds_bert_normalizer(config, model_config))
      options.bert_normalizer = TokenizerJsonOptions::BertNormalizerOverride{
          wp.lowercase, wp.strip_accents, wp.tokenize_chinese_chars};
    return wordpiece_from_json(j, json_path.string(), options);
  }
  // SentencePiece (tokenizer.model without tokenizer.json): LlamaTokenizerFast, see spm_load.cpp.
  if (fs::exists(dir / "tokenizer.model")) return spm_from_folder(model_dir, config, config_path.string());
  for (const auto& [vocab, merges] : {std::pair<const char*, const char*>{"vocab.json", "merges.txt"},
                                      {"encoder.json", "vocab.bpe"}}) {
    if (fs::exists(dir / vocab) && fs::exists(dir / merges))
      return load_bpe_files(dir / vocab, dir / merges, config, model_config, config_path);
  }
  return WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string(), wp);
}

}  // namespace peft::tok
