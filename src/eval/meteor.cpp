// Exact-match METEOR.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "eval/nlg_detail.h"

namespace peft::eval {

double sentence_meteor(const std::vector<std::string>& hypothesis, const std::vector<std::string>& reference,
                       const MeteorParams& params) {
  if (hypothesis.empty() || reference.empty()) return 0.0;
  // Alignment as nltk's exact stage makes it: hypothesis words from the last, each to the last
  // still unused equal reference word. Same-word occurrences are thus paired in order, which
  // keeps the chunk count low without METEOR 1.5's search over alignments.
  std::unordered_map<std::string, std::vector<size_t>> positions;
  for (size_t j = 0; j < reference.size(); ++j) positions[reference[j]].push_back(j);
  std::vector<std::pair<size_t, size_t>> matches;  // (hypothesis index, reference index)
  for (size_t i = hypothesis.size(); i-- > 0;) {
    auto it = positions.find(hypothesis[i]);
    if (it == positions.end() || it->second.empty()) continue;
    matches.emplace_back(i, it->second.back());
    it->second.pop_back();
  }
  if (matches.empty()) return 0.0;
  std::reverse(matches.begin(), matches.end());  // by hypothesis index

  // A chunk: matches adjacent in both hypothesis and reference.
  size_t chunks = 1;
  for (size_t k = 0; k + 1 < matches.size(); ++k)
    if (matches[k + 1].first != matches[k].first + 1 || matches[k + 1].second != matches[k].second + 1) ++chunks;

  const double m = double(matches.size());
  const double precision = m / double(hypothesis.size()), recall = m / double(reference.size());
  const double fmean = precision * recall / (params.alpha * precision + (1 - params.alpha) * recall);
  const double penalty = params.gamma * std::pow(double(chunks) / m, params.beta);
  return (1 - penalty) * fmean;
}

double corpus_meteor(const std::vector<std::string>& hypotheses, const References& references,
                     const MeteorParams& params) {
  detail::check_corpus("meteor", hypotheses, references);
  double sum = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const auto hyp = tokenize_coco(hypotheses[i]);
    double best = 0;
    for (const auto& r : references[i]) best = std::max(best, sentence_meteor(hyp, tokenize_coco(r), params));
    sum += best;
  }
  return sum / double(hypotheses.size());
}

}  // namespace peft::eval
