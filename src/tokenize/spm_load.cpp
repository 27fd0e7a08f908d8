// spm_from_folder: a folder with tokenizer.model (and no tokenizer.json), read as
// AutoTokenizer.from_pretrained(dir) does for LlamaTokenizer: LlamaTokenizerFast converted from
// the slow tokenizer with the options of tokenizer_config.json.
#include <algorithm>
#include <filesystem>

#include "peft/error.h"
#include "tokenize/spm_impl.h"

namespace peft::tok {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// "<s>" or {"content": "<s>", ...}; nullopt for null; `fallback` when absent.
std::optional<std::string> spm_token_name(const json& config, const char* key, std::optional<std::string> fallback,
                                          const std::string& file) {
  auto it = config.find(key);
  if (it == config.end()) return fallback;
  if (it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("{}: '{}' is neither a token string nor an object with a \"content\" string", file, key);
}

template <typename T>
T spm_value(const json& config, const char* key, T fallback, const std::string& file) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: '{}' has the wrong type ({})", file, key, it->type_name());
  }
}

bool spm_flag(const json& entry, const char* key, bool fallback, const std::string& file) {
  auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}: added token field '{}' is not a boolean", file, key);
  return it->get<bool>();
}

// added_tokens_decoder: {"32000": {"content": "<pad>", "special": true, ...}, ...}.
std::vector<SpmAddedToken> spm_added_tokens(const json& config, const std::string& file) {
  std::vector<SpmAddedToken> out;
  auto it = config.find("added_tokens_decoder");
  if (it == config.end() || it->is_null()) return out;
  if (!it->is_object()) fail("{}: added_tokens_decoder is not an object", file);
  for (auto e = it->begin(); e != it->end(); ++e) {
    SpmAddedToken t;
    try {
      size_t used = 0;
      t.id = std::stoll(e.key(), &used);
      if (used != e.key().size() || *t.id < 0) throw std::invalid_argument("id");
    } catch (const std::exception&) {
      fail("{}: added_tokens_decoder key '{}' is not a token id", file, e.key());
    }
    const json& v = e.value();
    if (!v.is_object() || !v.contains("content") || !v["content"].is_string())
      fail("{}: added_tokens_decoder entry {} has no \"content\" string", file, e.key());
    t.content = v["content"].get<std::string>();
    t.special = spm_flag(v, "special", false, file);
    t.normalized = spm_flag(v, "normalized", !t.special, file);
    t.lstrip = spm_flag(v, "lstrip", false, file);
    t.rstrip = spm_flag(v, "rstrip", false, file);
    if (spm_flag(v, "single_word", false, file))
      fail("{}: added token '{}' has single_word=true, which is not supported", file, t.content);
    out.push_back(std::move(t));
  }
  // transformers adds them sorted by id.
  std::stable_sort(out.begin(), out.end(), [](const SpmAddedToken& a, const SpmAddedToken& b) { return *a.id < *b.id; });
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> spm_from_folder(const std::string& dir, const json& config, const std::string& config_path) {
  const std::string model_path = (fs::path(dir) / "tokenizer.model").string();
  std::string cls = spm_value<std::string>(config, "tokenizer_class", "", config_path);
  if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  if (!cls.empty() && cls != "LlamaTokenizer")
    fail("{}: tokenizer class '{}' is not supported for a tokenizer.model without tokenizer.json "
         "(supported: LlamaTokenizer)", config_path, cls);
  SpmOptions o;
  o.legacy = spm_value<bool>(config, "legacy", true, config_path);
  o.add_prefix_space = spm_value<bool>(config, "add_prefix_space", true, config_path);
  o.add_bos_token = spm_value<bool>(config, "add_bos_token", true, config_path);
  o.add_eos_token = spm_value<bool>(config, "add_eos_token", false, config_path);
  o.clean_up_tokenization_spaces = spm_value<bool>(config, "clean_up_tokenization_spaces", false, config_path);
  const std::string side = spm_value<std::string>(config, "padding_side", "left", config_path);
  if (side != "left" && side != "right")
    fail("{}: padding_side '{}' is neither 'right' nor 'left'", config_path, side);
  o.padding_side = side == "left" ? PaddingSide::Left : PaddingSide::Right;
  if (auto it = config.find("model_max_length"); it != config.end() && it->is_number()) {
    const double v = it->get<double>();  // transformers' "no limit" is int(1e30)
    if (v > 0 && v <= 1e15) o.model_max_length = static_cast<size_t>(v);
  }
  o.bos_token = spm_token_name(config, "bos_token", std::string("<s>"), config_path);
  o.eos_token = spm_token_name(config, "eos_token", std::string("</s>"), config_path);
  o.unk_token = spm_token_name(config, "unk_token", std::string("<unk>"), config_path);
  o.pad_token = spm_token_name(config, "pad_token", std::nullopt, config_path);
  if (auto it = config.find("additional_special_tokens"); it != config.end() && it->is_array()) {
    for (const json& t : *it) {
      if (t.is_string()) o.additional_special_tokens.push_back(t.get<std::string>());
      else if (t.is_object() && t.contains("content") && t["content"].is_string())
        o.additional_special_tokens.push_back(t["content"].get<std::string>());
      else fail("{}: additional_special_tokens holds something that is not a token", config_path);
    }
  }
  o.added_tokens = spm_added_tokens(config, config_path);
  return SpmTokenizer::from_model_file(model_path, o);
}

}  // namespace peft::tok
