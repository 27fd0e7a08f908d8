#include "peft/tokenize/tokenizer.h"

#include <algorithm>

#include "peft/error.h"

namespace peft::tok {

Tokenizer::~Tokenizer() = default;

namespace {

// Encodes items one by one without padding, then pads the batch as a whole.
template <typename Encode>
std::vector<Encoding> encode_all(size_t n, const EncodeOptions& options, Encode&& encode) {
  EncodeOptions each = options;
  each.padding = Padding::None;
  // An unset strategy must resolve as the batch call would, not as an unpadded call.
  if (!each.truncation && options.padding != Padding::None) each.truncation = Truncation::None;
  std::vector<Encoding> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(encode(i, each));
  return out;
}

}  // namespace

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                              const EncodeOptions& options) const {
  auto out = encode_all(texts.size(), options,
                        [&](size_t i, const EncodeOptions& o) { return encode(texts[i], std::nullopt, o); });
  size_t longest = 0;
  for (const Encoding& e : out) longest = std::max(longest, e.size());
  if (auto length = padding_length(options, longest))
    for (Encoding& e : out) pad_to(e, *length, options);
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                              const EncodeOptions& options) const {
  auto out = encode_all(pairs.size(), options, [&](size_t i, const EncodeOptions& o) {
    return encode(pairs[i].first, std::string_view(pairs[i].second), o);
  });
  size_t longest = 0;
  for (const Encoding& e : out) longest = std::max(longest, e.size());
  if (auto length = padding_length(options, longest))
    for (Encoding& e : out) pad_to(e, *length, options);
  return out;
}

std::optional<size_t> Tokenizer::padding_length(const EncodeOptions& options, size_t longest) const {
  // Like transformers, asking for padding without a pad token is an error even if none is needed.
  if (options.padding != Padding::None && !pad_id()) fail("padding requested but the tokenizer has no pad token");
  switch (options.padding) {
    case Padding::None:
      return std::nullopt;
    case Padding::Longest:
      return longest;
    case Padding::MaxLength:
      if (options.max_length) return options.max_length;
      if (auto m = model_max_length()) return m;
      fail("padding to max_length needs EncodeOptions::max_length: this tokenizer has no model_max_length");
  }
  return std::nullopt;
}

void Tokenizer::pad_to(Encoding& e, size_t length, const EncodeOptions& options) const {
  if (e.size() >= length) return;
  const std::optional<int64_t> pad = pad_id();
  if (!pad) fail("padding requested but the tokenizer has no pad token");
  const size_t n = length - e.size();
  const bool left = options.padding_side.value_or(padding_side()) == PaddingSide::Left;
  const auto grow = [&](auto& v, const auto& value) { v.insert(left ? v.begin() : v.end(), n, value); };
  grow(e.ids, *pad);
  grow(e.type_ids, int64_t{0});
  grow(e.attention_mask, int64_t{0});
  grow(e.tokens, id_to_token(*pad));
}

}  // namespace peft::tok
