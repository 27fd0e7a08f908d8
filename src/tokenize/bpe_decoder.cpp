#include "tokenize/bpe_decoder.h"

#include "tokenize/byte_level.h"
#include "tokenize/decode_text.h"

namespace peft::tok {
namespace {

// "<0x0A>" -> 0x0A, as ByteFallback reads it; -1 for other tokens.
int byte_token_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = token[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// ByteFallback: each run of byte tokens becomes its UTF-8 text, or one U+FFFD per byte when the
// run is not valid UTF-8.
std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string run;
  size_t run_length = 0;
  const auto end_run = [&] {
    if (run_length == 0) return;
    if (lossy_utf8(run) == run) out.push_back(run);
    else for (size_t i = 0; i < run_length; ++i) out.emplace_back("\xEF\xBF\xBD");
    run.clear();
    run_length = 0;
  };
  for (std::string& t : tokens) {
    const int b = byte_token_value(t);
    if (b >= 0) {
      run += static_cast<char>(b);
      ++run_length;
      continue;
    }
    end_run();
    out.push_back(std::move(t));
  }
  end_run();
  return out;
}

}  // namespace

std::string BpeDecoder::decode(std::vector<std::string> tokens) const {
  std::string text;
  if (!present_) {
    for (size_t i = 0; i < tokens.size(); ++i) text.append(i ? " " : "").append(tokens[i]);
    return text;
  }
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::ByteFallback:
        tokens = byte_fallback(std::move(tokens));
        break;
      case Step::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::Replace:
        for (std::string& t : tokens) replace_all(t, step.from, step.to);
        break;
      case Step::ByteLevel: {
        // Each token maps back to bytes (or stays as it is when it has a character outside the
        // alphabet); the bytes of all tokens are repaired as one string.
        std::string bytes;
        for (const std::string& t : tokens) byte_level::decode(t, bytes);
        tokens.assign(1, lossy_utf8(bytes));
        break;
      }
    }
  }
  for (const std::string& t : tokens) text += t;
  return text;
}

void BpeDecoder::append_piece(const std::string& token, bool first, std::string& out) const {
  if (!present_) {
    out.append(first ? "" : " ").append(token);
    return;
  }
  std::string t = token;
  bool bytes = false;  // after ByteLevel, t holds bytes
  for (const Step& step : steps_) {
    if (step.kind == Step::ByteFallback) {
      const int b = byte_token_value(t);
      if (b >= 0) {
        out += static_cast<char>(b);
        return;
      }
    } else if (step.kind == Step::Replace && !bytes) {
      replace_all(t, step.from, step.to);
    } else if (step.kind == Step::ByteLevel && !bytes) {
      std::string raw;
      byte_level::decode(t, raw);
      t.swap(raw);
      bytes = true;
    }
  }
  out += t;
}

}  // namespace peft::tok
