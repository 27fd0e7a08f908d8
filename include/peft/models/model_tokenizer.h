#pragma once
// The tokenizer (and chat template) that goes with a model, wherever the model comes from: an HF
// folder (tokenizer files, tokenizer_config.json's chat_template or chat_template.jinja), a
// tokenizer-only folder, or a GGUF file / packaged GGUF name (tokenizer.ggml.* metadata and
// tokenizer.chat_template, read as transformers' gguf_file= loader reads them).
#include <memory>
#include <string>

#include "peft/models/encoder_config.h"
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

// The input limit of sentence embeddings from an encoder folder, as sentence-transformers truncates:
// sentence_bert_config.json's max_seq_length, else the tokenizer's model_max_length, within the
// positions the encoder has.
size_t sentence_max_length(const std::string& model_dir, const tok::Tokenizer& tokenizer, const EncoderConfig& config);

}  // namespace peft
