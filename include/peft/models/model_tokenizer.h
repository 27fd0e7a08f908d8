#pragma once
// The tokenizer (and chat template) that goes with a model, wherever the model comes from: an HF
// folder (tokenizer files, tokenizer_config.json's chat_template or chat_template.jinja), a
// tokenizer-only folder, or a GGUF file / packaged GGUF name (tokenizer.ggml.* metadata and
// tokenizer.chat_template, read as transformers' gguf_file= loader reads them).
#include <memory>
#include <string>

#include "peft/tokenize/tokenizer.h"

namespace peft {

struct ModelTokenizer {
  std::unique_ptr<tok::Tokenizer> tokenizer;
  std::string chat_template;  // Jinja source; empty when the model has none
  std::string source;         // the folder or GGUF file it came from
};

ModelTokenizer load_model_tokenizer(const std::string& model);

// Throws naming the tokenizer's source when it has more tokens than the model's embedding has rows
// (a tokenizer of another model).
void check_tokenizer_fits(const ModelTokenizer& tokenizer, int64_t embedding_rows);

}  // namespace peft
