// ROUGE-L F-measure as rouge-score computes it.
#include <algorithm>

#include "eval/nlg_detail.h"

namespace peft::eval {
namespace detail {

// Length of the longest common subsequence, two rows of the DP table.
static size_t nlg_lcs_length(const Tokens& a, const Tokens& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

static double nlg_rouge_l_f(const Tokens& hyp, const Tokens& ref) {
  if (hyp.empty() || ref.empty()) return 0.0;
  const double lcs = double(nlg_lcs_length(ref, hyp));
  const double p = lcs / double(hyp.size()), r = lcs / double(ref.size());
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

}  // namespace detail

double sentence_rouge_l(const std::string& hypothesis, const std::vector<std::string>& references) {
  const auto hyp = tokenize_rouge(hypothesis);
  double best = 0;
  for (const auto& r : references) best = std::max(best, detail::nlg_rouge_l_f(hyp, tokenize_rouge(r)));
  return best;
}

double corpus_rouge_l(const std::vector<std::string>& hypotheses, const References& references) {
  detail::check_corpus("rouge_l", hypotheses, references);
  double sum = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i) sum += sentence_rouge_l(hypotheses[i], references[i]);
  return sum / double(hypotheses.size());
}

}  // namespace peft::eval
