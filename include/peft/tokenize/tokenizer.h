#pragma once
// Text -> token ids, with the semantics of Hugging Face `tokenizers` / transformers' fast
// tokenizers (special tokens, truncation, padding, token type ids), so that models fine-tuned here
// see exactly the ids they would see in Python. See docs/tokenizer.md.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace peft::tok {

// One encoded input (a sequence or a pair), special tokens and padding included.
struct Encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;        // 0 for the first sequence, 1 for the second (BERT pairs)
  std::vector<int64_t> attention_mask;  // 1 for real tokens, 0 for padding
  std::vector<std::string> tokens;      // the token strings of ids ("[PAD]" where padded)
  size_t size() const { return ids.size(); }
};

// transformers' truncation strategies. Special tokens count toward max_length.
enum class Truncation {
  None,
  LongestFirst,  // trims the longer sequence first (transformers' truncation=True)
  OnlyFirst,     // trims only the first sequence; Error when that is not enough
  OnlySecond     // trims only the second sequence; Error when that is not enough or there is none
};

enum class PaddingSide { Right, Left };

enum class Padding {
  None,
  Longest,   // to the longest encoding of the batch (a single encode is left as is)
  MaxLength  // to max_length (model_max_length when max_length is unset); longer ones stay longer
};

struct EncodeOptions {
  bool add_special_tokens = true;
  std::optional<size_t> max_length;
  // Unset follows transformers: LongestFirst when max_length is set and padding is None, else
  // None. A strategy without max_length truncates to model_max_length (if the model has one).
  std::optional<Truncation> truncation;
  Padding padding = Padding::None;  // with pad id, type id 0, mask 0
  std::optional<PaddingSide> padding_side;  // unset: the tokenizer's (transformers' padding_side)
};

class Tokenizer {
 public:
  virtual ~Tokenizer();

  // The tokens of text, without special tokens, truncation or padding (transformers' tokenize()).
  virtual std::vector<std::string> tokenize(std::string_view text) const = 0;

  // Encodes text, or the pair (text, pair). An empty pair is still a pair: [CLS] A [SEP] [SEP]
  // (as `tokenizers` and transformers' batch calls do). Throws peft::Error on impossible
  // truncation requests.
  virtual Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt,
                          const EncodeOptions& options = {}) const = 0;

  // Encodes every text (or text pair) and applies options.padding across the batch.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts,
                                     const EncodeOptions& options = {}) const;
  std::vector<Encoding> encode_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                     const EncodeOptions& options = {}) const;

  // Vocabulary, added tokens included.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;  // Error when the id is unknown
  virtual size_t vocab_size() const = 0;

  // ids -> text, as transformers' decode(ids, skip_special_tokens) (with the tokenizer's own
  // clean_up_tokenization_spaces). skip_special_tokens drops the special added tokens; ids that
  // name no token are skipped, as in `tokenizers`.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const = 0;
  // decode() one id at a time, for StreamingDecoder: appends the raw bytes id adds to the text
  // before the final clean-up, given how many ids were kept before it; false when the id is
  // dropped (unknown, or special with skip_special_tokens).
  virtual bool decode_piece(int64_t id, size_t kept_before, bool skip_special_tokens, std::string& out) const = 0;
  virtual bool decode_cleans_up() const = 0;  // whether decode() applies clean_up_tokenization

  virtual std::optional<int64_t> bos_id() const = 0;  // beginning / end of sequence, if the model has them
  virtual std::optional<int64_t> eos_id() const = 0;
  virtual std::optional<int64_t> pad_id() const = 0;
  virtual std::optional<int64_t> cls_id() const = 0;
  virtual std::optional<int64_t> sep_id() const = 0;
  virtual std::optional<int64_t> unk_id() const = 0;
  virtual std::optional<int64_t> mask_id() const = 0;
  // The longest input the model accepts (tokenizer_config.json's model_max_length), if known.
  virtual std::optional<size_t> model_max_length() const = 0;
  // Where padding goes unless EncodeOptions says: right, or left for decoder-only models whose
  // transformers tokenizer pads on the left (LlamaTokenizerFast, tokenizer_config's padding_side).
  virtual PaddingSide padding_side() const { return PaddingSide::Right; }

 protected:
  // For implementations: the length options.padding asks for given the longest encoding of the
  // batch (nullopt: no padding), and padding up to it with the pad token on the side asked for.
  std::optional<size_t> padding_length(const EncodeOptions& options, size_t longest) const;
  void pad_to(Encoding& encoding, size_t length, const EncodeOptions& options) const;
};

// Incremental decode() for generation: push(id) returns the text that id completes, never half
// a UTF-8 character (and, when the tokenizer cleans up spaces, nothing the clean-up might still
// change); flush() returns the rest, an unfinished character as U+FFFD. push()es then flush()
// joined equal decode(ids) (see docs/tokenizer.md for the one exception). Holds a reference to
// the tokenizer.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int64_t id);
  std::string flush();
  void reset();  // forget everything: the next id is decoded as the first one

 private:
  std::string take(size_t end);

  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  size_t kept_ = 0;      // ids kept since the start
  std::string pending_;  // raw bytes not yet returned
};

// Loads the tokenizer of a model (or tokenizer-only) folder: tokenizer.json when present (WordPiece
// or BPE model), else vocab.json + merges.txt or encoder.json + vocab.bpe (byte-level BPE: GPT-2,
// RoBERTa), else tokenizer.model (SentencePiece, as LlamaTokenizerFast), else vocab.txt (WordPiece); tokenizer_config.json and special_tokens_map.json add
// special token names and limits. Throws peft::Error naming the file that is missing or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

}  // namespace peft::tok
