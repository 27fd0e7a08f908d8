// load_tokenizer(dir): what transformers' AutoTokenizer.from_pretrained(dir) builds for the
// tokenizer kinds we support.
#include <filesystem>
#include <set>

#include "peft/error.h"
#include "peft/tokenize/wordpiece.h"
#include "tokenize/files.h"
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

  const fs::path json_path = dir / "tokenizer.json";
  if (fs::exists(json_path)) {
    const json j = read_json(json_path.string(), "tokenizer");
    std::string type;
    if (j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].contains("type") &&
        j["model"]["type"].is_string())
      type = j["model"]["type"].get<std::string>();
    if (type != "WordPiece")
      fail("{}: unsupported model type '{}' (supported: WordPiece)", json_path.string(), type);
    TokenizerJsonOptions options;
    options.model_max_length = wp.model_max_length;
    options.cls_token = wp.cls_token;
    options.sep_token = wp.sep_token;
    options.pad_token = wp.pad_token;
    options.mask_token = wp.mask_token;
    if (rebuilds_bert_normalizer(config, read_optional_json(dir / "config.json", "model config")))
      options.bert_normalizer = TokenizerJsonOptions::BertNormalizerOverride{
          wp.lowercase, wp.strip_accents, wp.tokenize_chinese_chars};
    return wordpiece_from_json(j, json_path.string(), options);
  }
  return WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string(), wp);
}

}  // namespace peft::tok
