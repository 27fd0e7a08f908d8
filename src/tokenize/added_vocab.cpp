#include "tokenize/added_vocab.h"

#include <algorithm>
#include <cstring>

#include "tokenize/unicode.h"

namespace peft::tok {
namespace {

bool is_space(char32_t cp) { return unicode::has(cp, unicode::kSpace); }

// Start of the whitespace run that ends at `end`, not before `floor`.
size_t whitespace_before(std::string_view text, size_t floor, size_t end) {
  size_t run_start = floor;
  for (size_t pos = floor; pos < end;)
    if (!is_space(unicode::decode_utf8(text, pos))) run_start = pos;  // pos is past that char
  return run_start;
}

}  // namespace

AddedVocab::AddedVocab(std::vector<AddedToken> tokens, const Normalize& normalize)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;
    if (t.normalized) {
      std::string text;
      normalize(t.content, text);
      if (!text.empty()) normalized_.patterns.push_back({std::move(text), i});
    } else {
      raw_.patterns.push_back({t.content, i});
    }
  }
  index(raw_);
  index(normalized_);
}

void AddedVocab::index(Matcher& m) {
  std::stable_sort(m.patterns.begin(), m.patterns.end(),
                   [](const Pattern& a, const Pattern& b) { return a.text.size() > b.text.size(); });
  for (size_t i = 0; i < m.patterns.size(); ++i) {
    const unsigned char b = static_cast<unsigned char>(m.patterns[i].text[0]);
    m.by_first_byte[b].push_back(i);
    m.first_byte[b] = true;
  }
  for (int b = 0; b < 256; ++b) {
    if (!m.first_byte[b]) continue;
    m.only_first_byte = m.only_first_byte == -1 ? b : -2;
  }
  if (m.only_first_byte < 0) m.only_first_byte = -1;
}

void AddedVocab::split(const Matcher& m, std::string_view text, std::vector<Piece>& out) const {
  if (m.patterns.empty()) {
    out.push_back({text, -1});
    return;
  }
  size_t done = 0;  // text before this is already emitted
  for (size_t pos = 0; pos < text.size();) {
    // Skip to the next byte that can start a match.
    if (m.only_first_byte >= 0) {
      const void* next = std::memchr(text.data() + pos, m.only_first_byte, text.size() - pos);
      if (next == nullptr) break;
      pos = static_cast<size_t>(static_cast<const char*>(next) - text.data());
    } else {
      while (pos < text.size() && !m.first_byte[static_cast<unsigned char>(text[pos])]) ++pos;
      if (pos == text.size()) break;
    }
    const Pattern* hit = nullptr;
    for (size_t i : m.by_first_byte[static_cast<unsigned char>(text[pos])]) {
      const std::string& p = m.patterns[i].text;
      if (text.compare(pos, p.size(), p) == 0) {
        hit = &m.patterns[i];  // the first is the longest
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[hit->token];
    size_t start = pos, stop = pos + hit->text.size();
    if (token.lstrip) start = whitespace_before(text, done, start);
    if (token.rstrip) {
      for (size_t p = stop; p < text.size();) {
        if (!is_space(unicode::decode_utf8(text, p))) break;
        stop = p;
      }
    }
    if (start > done) out.push_back({text.substr(done, start - done), -1});
    out.push_back({text.substr(start, stop - start), token.id});
    done = pos = stop;
  }
  if (done < text.size()) out.push_back({text.substr(done), -1});
}

std::optional<int64_t> AddedVocab::find(std::string_view content) const {
  for (const AddedToken& t : tokens_)
    if (t.content == content) return t.id;
  return std::nullopt;
}

const std::string* AddedVocab::content(int64_t id) const {
  for (const AddedToken& t : tokens_)
    if (t.id == id) return &t.content;
  return nullptr;
}

}  // namespace peft::tok
