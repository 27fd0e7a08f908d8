// The five E2E scores together.
#include "eval/nlg_detail.h"

namespace peft::eval {

NlgScores score_corpus(const std::vector<std::string>& hypotheses, const References& references) {
  detail::check_corpus("score_corpus", hypotheses, references);
  NlgScores s;
  s.bleu = corpus_bleu(hypotheses, references, /*lowercase=*/true);
  s.nist = corpus_nist(hypotheses, references, NistOptions{});
  s.meteor = corpus_meteor(hypotheses, references);
  s.rouge_l = corpus_rouge_l(hypotheses, references);
  s.cider = corpus_cider(hypotheses, references);
  return s;
}

nlohmann::json to_json(const NlgScores& scores) {
  return {{"bleu", scores.bleu},
          {"nist", scores.nist},
          {"meteor", scores.meteor},
          {"rouge_l", scores.rouge_l},
          {"cider", scores.cider}};
}

}  // namespace peft::eval
