// Corpus BLEU-4 as sacrebleu (and mteval-v13a) compute it.
#include <cmath>
#include <cstdlib>

#include "eval/nlg_detail.h"

namespace peft::eval {

double BleuStats::score() const {
  if (hyp_len == 0) return 0.0;
  // sacrebleu's 'exp' smoothing (mteval-v13a's): the k-th order without matches counts as
  // 1 / (2^k * total). An order without any hypothesis n-gram makes the score 0.
  double log_sum = 0.0, smooth = 1.0;
  for (size_t n = 0; n < matches.size(); ++n) {
    if (totals[n] == 0) return 0.0;
    double precision;
    if (matches[n] == 0) {
      smooth *= 2;
      precision = 1.0 / (smooth * double(totals[n]));
    } else {
      precision = double(matches[n]) / double(totals[n]);
    }
    log_sum += std::log(precision);
  }
  const double bp = hyp_len < ref_len ? std::exp(1.0 - double(ref_len) / double(hyp_len)) : 1.0;
  return bp * std::exp(log_sum / double(matches.size()));
}

BleuStats bleu_stats(const std::vector<std::string>& hypotheses, const References& references, bool lowercase) {
  detail::check_corpus("bleu", hypotheses, references);
  BleuStats stats;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const auto hyp = tokenize_13a(hypotheses[i], lowercase);
    std::vector<detail::Tokens> refs;
    for (const auto& r : references[i]) refs.push_back(tokenize_13a(r, lowercase));

    const int64_t hyp_len = int64_t(hyp.size());
    // The reference closest in length; on a tie the shorter one (IBM BLEU, mteval, sacrebleu).
    int64_t closest = -1;
    for (const auto& r : refs) {
      const int64_t len = int64_t(r.size());
      if (closest < 0 || std::llabs(len - hyp_len) < std::llabs(closest - hyp_len) ||
          (std::llabs(len - hyp_len) == std::llabs(closest - hyp_len) && len < closest))
        closest = len;
    }
    stats.hyp_len += hyp_len;
    stats.ref_len += closest;

    for (int n = 1; n <= 4; ++n) {
      const auto ref_max = detail::max_ref_counts(refs, n);
      for (const auto& [gram, count] : detail::count_ngrams(hyp, n)) {
        auto it = ref_max.find(gram);
        if (it != ref_max.end()) stats.matches[n - 1] += std::min(count, it->second);
      }
      stats.totals[n - 1] += std::max<int64_t>(0, hyp_len - n + 1);
    }
  }
  return stats;
}

double corpus_bleu(const std::vector<std::string>& hypotheses, const References& references, bool lowercase) {
  return bleu_stats(hypotheses, references, lowercase).score();
}

}  // namespace peft::eval
