// Corpus NIST (Doddington 2002) as mteval-v13a computes it.
#include <algorithm>
#include <cmath>

#include "eval/nlg_detail.h"
#include "peft/error.h"

namespace peft::eval {
namespace detail {

// mteval's length penalty: 1 at or above the average reference length, 0.5 at 2/3 of it.
static double nlg_nist_length_penalty(double ratio) {
  if (ratio >= 1) return 1.0;
  if (ratio <= 0) return 0.0;
  const double beta = -std::log(0.5) / (std::log(1.5) * std::log(1.5));
  return std::exp(-beta * std::log(ratio) * std::log(ratio));
}

}  // namespace detail

double corpus_nist(const std::vector<std::string>& hypotheses, const References& references,
                   const NistOptions& options) {
  detail::check_corpus("nist", hypotheses, references);
  const int N = options.max_order;
  if (N < 1) fail("nist: max_order must be >= 1 (got {})", N);

  std::vector<detail::Tokens> hyps;
  std::vector<std::vector<detail::Tokens>> refs(references.size());
  for (const auto& h : hypotheses) hyps.push_back(tokenize_13a(h, options.lowercase));
  for (size_t i = 0; i < references.size(); ++i)
    for (const auto& r : references[i]) refs[i].push_back(tokenize_13a(r, options.lowercase));

  // Information weights from every reference of the corpus:
  // info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)), with the number of reference words
  // in place of the count of the empty prefix.
  std::vector<detail::NgramCounts> ref_counts(size_t(N) + 1);
  int64_t ref_words = 0;
  size_t max_refs = 0;
  double per_hypothesis_ref_len = 0;
  for (const auto& seg : refs) {
    int64_t seg_words = 0;
    for (const auto& r : seg) {
      for (int n = 1; n <= N; ++n)
        for (const auto& [gram, count] : detail::count_ngrams(r, n)) ref_counts[size_t(n)][gram] += count;
      seg_words += int64_t(r.size());
    }
    ref_words += seg_words;
    max_refs = std::max(max_refs, seg.size());
    per_hypothesis_ref_len += double(seg_words) / double(seg.size());
  }
  auto info = [&](const std::string& gram, int n) {
    const double count = double(ref_counts[size_t(n)].at(gram));
    const double prefix =
        n == 1 ? double(ref_words) : double(ref_counts[size_t(n) - 1].at(gram.substr(0, gram.rfind(' '))));
    return std::log2(prefix / count);
  };

  // Matched information and hypothesis n-gram counts, summed over the corpus.
  std::vector<double> hit_info(size_t(N) + 1, 0.0);
  std::vector<int64_t> hyp_ngrams(size_t(N) + 1, 0);
  for (size_t i = 0; i < hyps.size(); ++i) {
    for (int n = 1; n <= N; ++n) {
      const auto ref_max = detail::max_ref_counts(refs[i], n);
      for (const auto& [gram, count] : detail::count_ngrams(hyps[i], n)) {
        auto it = ref_max.find(gram);
        if (it != ref_max.end()) hit_info[size_t(n)] += info(gram, n) * double(std::min(count, it->second));
      }
      hyp_ngrams[size_t(n)] += std::max<int64_t>(0, int64_t(hyps[i].size()) - n + 1);
    }
  }

  double score = 0;
  for (int n = 1; n <= N; ++n) score += hit_info[size_t(n)] / double(std::max<int64_t>(hyp_ngrams[size_t(n)], 1));
  const double avg_ref_len = options.ref_length == NistRefLength::Mteval ? double(ref_words) / double(max_refs)
                                                                         : per_hypothesis_ref_len;
  const double ratio = avg_ref_len > 0 ? double(hyp_ngrams[1]) / avg_ref_len : 1.0;
  return score * detail::nlg_nist_length_penalty(ratio);
}

}  // namespace peft::eval
