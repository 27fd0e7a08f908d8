#include "peft/models/model_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/models/checkpoint.h"
#include "peft/models/gguf_model.h"
#include "peft/tokenize/bpe.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

tok::BpeParts bpe_parts(GgufTokenizer t) {
  tok::BpeParts p;
  p.model = std::move(t.model);
  p.pre = std::move(t.pre);
  p.tokens = std::move(t.tokens);
  p.token_types = std::move(t.token_types);
  p.scores = std::move(t.scores);
  p.merges = std::move(t.merges);
  p.bos_token_id = t.bos_token_id;
  p.eos_token_id = t.eos_token_id;
  p.pad_token_id = t.pad_token_id;
  p.unk_token_id = t.unk_token_id;
  p.add_bos_token = t.add_bos_token;
  p.add_eos_token = t.add_eos_token;
  p.add_space_prefix = t.add_space_prefix;
  p.chat_template = std::move(t.chat_template);
  return p;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// tokenizer_config.json's chat_template: a string, or a list of {name, template} (the "default" one).
std::string folder_chat_template(const fs::path& dir) {
  if (fs::exists(dir / "chat_template.jinja")) return read_text(dir / "chat_template.jinja");
  const fs::path config_path = dir / "tokenizer_config.json";
  if (!fs::exists(config_path)) return "";
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", config_path.string(), e.what());
  }
  if (!config.is_object() || !config.contains("chat_template")) return "";
  const nlohmann::json& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())
    for (const auto& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
  if (t.is_null()) return "";
  fail("{}: chat_template is neither a string nor a list with a \"default\" template", config_path.string());
}

}  // namespace

void check_tokenizer_fits(const ModelTokenizer& mt, int64_t embedding_rows) {
  if (int64_t(mt.tokenizer->vocab_size()) > embedding_rows)
    fail("{}: the tokenizer has {} tokens but the model's embedding has {} rows (a tokenizer of another model?)",
         mt.source, mt.tokenizer->vocab_size(), embedding_rows);
}

ModelTokenizer load_model_tokenizer(const std::string& model) {
  // A folder is taken as it is: tokenizer-only folders (vocab.json + merges.txt, tokenizer.json) have no config.json.
  std::error_code ec;
  const fs::path source = fs::is_directory(model, ec) ? fs::absolute(model) : resolve_model_source(model);
  ModelTokenizer out;
  out.source = source.string();
  if (fs::is_regular_file(source)) {  // a GGUF file
    const io::GgufFile file = io::GgufFile::open(source.string());
    tok::BpeParts parts = bpe_parts(gguf_tokenizer(file));
    if (parts.model.empty()) fail("{}: no tokenizer.ggml.model in the metadata (the file carries no tokenizer)", out.source);
    out.chat_template = parts.chat_template;
    try {
      out.tokenizer = tok::make_bpe_tokenizer(parts);
    } catch (const Error& e) {
      fail("{}: {}", out.source, e.what());  // the metadata errors name the key; this names the file
    }
    return out;
  }
  out.tokenizer = tok::load_tokenizer(source.string());
  out.chat_template = folder_chat_template(source);
  return out;
}

size_t sentence_max_length(const std::string& model_dir, const tok::Tokenizer& tokenizer, const EncoderConfig& config) {
  size_t limit = static_cast<size_t>(config.max_position_embeddings);
  if (config.family == EncoderFamily::Roberta) limit -= static_cast<size_t>(config.pad_token_id) + 1;
  const fs::path path = fs::path(model_dir) / "sentence_bert_config.json";
  std::ifstream st(path);
  if (st) {
    nlohmann::json j = nlohmann::json::parse(st, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail("{}: invalid JSON", path.string());
    if (j.is_object() && j.contains("max_seq_length") && j["max_seq_length"].is_number_integer())
      return std::min(limit, j["max_seq_length"].get<size_t>());
  }
  if (auto m = tokenizer.model_max_length()) return std::min(limit, *m);
  return limit;
}

}  // namespace peft
