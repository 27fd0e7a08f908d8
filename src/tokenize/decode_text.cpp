#include "tokenize/decode_text.h"

#include "tokenize/unicode.h"

namespace peft::tok {

std::string lossy_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t ascii = 0;
  while (ascii < bytes.size() && static_cast<unsigned char>(bytes[ascii]) < 0x80) ++ascii;
  out.append(bytes.substr(0, ascii));
  for (size_t pos = ascii; pos < bytes.size();) unicode::append_utf8(out, unicode::decode_utf8(bytes, pos));
  return out;
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  size_t pos = text.find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(text.size());
  size_t done = 0;
  for (; pos != std::string::npos; pos = text.find(from, done)) {
    out.append(text, done, pos - done);
    out.append(to);
    done = pos + from.size();
  }
  out.append(text, done, std::string::npos);
  text.swap(out);
}

void clean_up_tokenization(std::string& text) {
  static constexpr std::string_view kRules[][2] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& rule : kRules) replace_all(text, rule[0], rule[1]);
}

void wordpiece_cleanup(std::string& token) {
  static constexpr std::string_view kRules[][2] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& rule : kRules) replace_all(token, rule[0], rule[1]);
}

}  // namespace peft::tok
