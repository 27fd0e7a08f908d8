#pragma once
// Helpers shared by the NLG metrics (src/eval/*.cpp). A named namespace, not anonymous ones, so
// that the files can share a unity-build translation unit.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "peft/eval/nlg_metrics.h"

namespace peft::eval::detail {

using Tokens = std::vector<std::string>;
// n-gram -> count, for one order n. Keys are the n tokens joined by ' ' (tokens never hold spaces).
using NgramCounts = std::unordered_map<std::string, int64_t>;

// Throws unless there is one non-empty reference list per hypothesis and at least one hypothesis.
void check_corpus(const char* metric, const std::vector<std::string>& hypotheses, const References& references);

// The n-grams of one order in `tokens`.
NgramCounts count_ngrams(const Tokens& tokens, int n);
// Per n-gram, the largest count in any one of `refs` (BLEU's and NIST's clipping counts).
NgramCounts max_ref_counts(const std::vector<Tokens>& refs, int n);

// Python's str.split() / str.rstrip() on UTF-8 text: the separators are Unicode whitespace.
Tokens split_unicode_whitespace(const std::string& text);
std::string rstrip_unicode_whitespace(const std::string& text);

// Decodes the code point starting at text[i]; returns its length in bytes (1 for a stray byte,
// whose value is then returned as the code point).
size_t decode_utf8(const std::string& text, size_t i, uint32_t& code_point);

}  // namespace peft::eval::detail
