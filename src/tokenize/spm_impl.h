#pragma once
// Internal entry points of the SentencePiece tokenizer (spm_tokenizer.cpp, spm_load.cpp, spm_gguf.cpp).
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "peft/tokenize/spm.h"
#include "tokenize/spm_proto.h"

namespace peft::tok {

// The tokenizer of a parsed ModelProto; `source` names it in errors.
std::unique_ptr<SpmTokenizer> spm_from_proto(const SpmModelProto& proto, const std::string& source,
                                             const SpmOptions& options);

// load_tokenizer for a folder with tokenizer.model and no tokenizer.json: the options of
// tokenizer_config.json (`config`, special_tokens_map.json merged in), as transformers'
// LlamaTokenizerFast reads them. Error for tokenizer classes other than LlamaTokenizer.
std::unique_ptr<Tokenizer> spm_from_folder(const std::string& dir, const nlohmann::json& config,
                                           const std::string& config_path);

}  // namespace peft::tok
