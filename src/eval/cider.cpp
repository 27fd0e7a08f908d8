// CIDEr-D as coco-caption's Cider computes it.
#include <cmath>
#include <unordered_set>

#include "eval/nlg_detail.h"

namespace peft::eval {
namespace detail {

constexpr int kCiderOrders = 4;

// One sentence's tf-idf vectors (one per order), their norms, and coco's "length".
struct CiderVector {
  std::vector<std::unordered_map<std::string, double>> weights = std::vector<std::unordered_map<std::string, double>>(kCiderOrders);
  std::vector<double> norms = std::vector<double>(kCiderOrders, 0.0);
  double length = 0;
};

static CiderVector nlg_cider_vector(const Tokens& tokens, const std::vector<NgramCounts>& doc_freq, double log_docs) {
  CiderVector v;
  for (int n = 0; n < kCiderOrders; ++n) {
    for (const auto& [gram, tf] : count_ngrams(tokens, n + 1)) {
      auto it = doc_freq[size_t(n)].find(gram);
      const double df = it == doc_freq[size_t(n)].end() ? 0.0 : double(it->second);
      const double w = double(tf) * (log_docs - std::log(std::max(1.0, df)));
      v.weights[size_t(n)][gram] = w;
      v.norms[size_t(n)] += w * w;
    }
    v.norms[size_t(n)] = std::sqrt(v.norms[size_t(n)]);
  }
  // coco counts the bigrams here (its `n == 1` is the second order), i.e. words - 1.
  v.length = double(std::max<size_t>(tokens.size(), 1) - 1);
  return v;
}

// Summed over orders: clipped cosine similarity times the Gaussian length penalty.
static std::vector<double> nlg_cider_sim(const CiderVector& hyp, const CiderVector& ref, double sigma) {
  std::vector<double> val(kCiderOrders, 0.0);
  const double delta = hyp.length - ref.length;
  for (int n = 0; n < kCiderOrders; ++n) {
    for (const auto& [gram, w] : hyp.weights[size_t(n)]) {
      auto it = ref.weights[size_t(n)].find(gram);
      if (it != ref.weights[size_t(n)].end()) val[size_t(n)] += std::min(w, it->second) * it->second;
    }
    if (hyp.norms[size_t(n)] != 0 && ref.norms[size_t(n)] != 0) val[size_t(n)] /= hyp.norms[size_t(n)] * ref.norms[size_t(n)];
    val[size_t(n)] *= std::exp(-(delta * delta) / (2 * sigma * sigma));
  }
  return val;
}

}  // namespace detail

std::vector<double> cider_scores(const std::vector<std::string>& hypotheses, const References& references,
                                 double sigma) {
  using namespace detail;
  check_corpus("cider", hypotheses, references);
  std::vector<std::vector<Tokens>> refs(references.size());
  for (size_t i = 0; i < references.size(); ++i)
    for (const auto& r : references[i]) refs[i].push_back(tokenize_coco(r));

  // Document frequency: in how many hypotheses' reference sets an n-gram occurs.
  std::vector<NgramCounts> doc_freq(kCiderOrders);
  for (const auto& seg : refs)
    for (int n = 0; n < kCiderOrders; ++n) {
      std::unordered_set<std::string> seen;
      for (const auto& r : seg)
        for (const auto& entry : count_ngrams(r, n + 1)) seen.insert(entry.first);
      for (const auto& gram : seen) ++doc_freq[size_t(n)][gram];
    }
  const double log_docs = std::log(double(refs.size()));

  std::vector<double> scores;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const auto hyp = nlg_cider_vector(tokenize_coco(hypotheses[i]), doc_freq, log_docs);
    std::vector<double> sum(kCiderOrders, 0.0);
    for (const auto& r : refs[i]) {
      const auto val = nlg_cider_sim(hyp, nlg_cider_vector(r, doc_freq, log_docs), sigma);
      for (int n = 0; n < kCiderOrders; ++n) sum[size_t(n)] += val[size_t(n)];
    }
    double mean = 0;
    for (double s : sum) mean += s;
    mean /= kCiderOrders;
    scores.push_back(mean / double(refs[i].size()) * 10.0);
  }
  return scores;
}

double corpus_cider(const std::vector<std::string>& hypotheses, const References& references, double sigma) {
  const auto scores = cider_scores(hypotheses, references, sigma);
  double sum = 0;
  for (double s : scores) sum += s;
  return sum / double(scores.size());
}

}  // namespace peft::eval
