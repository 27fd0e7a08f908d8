#pragma once
// Corpus-level scores of generated text against several references per hypothesis, as the E2E NLG
// challenge reports them: BLEU-4, NIST-5, METEOR, ROUGE-L and CIDEr-D. Each function takes the
// hypotheses and, for hypothesis i, all of its references (`references[i]`, any number >= 1, so
// E2E's varying reference counts need no padding). Results are fractions in [0, 1] except NIST
// (0 .. ~15) and CIDEr (0 .. ~10). docs/nlg_metrics.md says what each matches and how closely.
// Torch-free; errors (size mismatch, a hypothesis without references) throw peft::Error.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::eval {

// references[i]: every reference of hypothesis i.
using References = std::vector<std::vector<std::string>>;

// ---- tokenisation -------------------------------------------------------------------------
// mteval-v13a's / sacrebleu's default "13a" tokenisation (sacrebleu's Tokenizer13a applied to the
// right-stripped line). `lowercase` lowers A-Z only, as mteval-v13a does; sacrebleu's
// lowercase=True lowers all of Unicode, which differs only on non-ASCII capitals.
std::vector<std::string> tokenize_13a(const std::string& text, bool lowercase = false);
// rouge-score's default tokeniser without stemming: lowercase, every run of characters other than
// a-z0-9 separates tokens.
std::vector<std::string> tokenize_rouge(const std::string& text);
// The tokens METEOR and CIDEr see: 13a, lowercased, with the punctuation tokens dropped that
// coco-caption's PTB tokenisation drops (. , ; : ? ! - -- ... ' '' ` `` and round and curly brackets).
std::vector<std::string> tokenize_coco(const std::string& text);

// ---- BLEU ---------------------------------------------------------------------------------
// Corpus statistics: clipped n-gram matches and hypothesis n-gram counts (n = 1..4), hypothesis
// length and the summed closest reference lengths (ties: the shorter reference).
struct BleuStats {
  std::array<int64_t, 4> matches{}, totals{};
  int64_t hyp_len = 0, ref_len = 0;
  // BLEU-4 with the brevity penalty and sacrebleu's default 'exp' smoothing (= mteval-v13a's):
  // sacrebleu's score / 100.
  double score() const;
};
BleuStats bleu_stats(const std::vector<std::string>& hypotheses, const References& references,
                     bool lowercase = false);
// = sacrebleu.corpus_bleu(hypotheses, refs_transposed, lowercase=...).score / 100, where a
// hypothesis with fewer references has None in the remaining reference streams.
double corpus_bleu(const std::vector<std::string>& hypotheses, const References& references,
                   bool lowercase = false);

// ---- NIST ---------------------------------------------------------------------------------
// How the average reference length of the length penalty is taken when hypotheses have different
// numbers of references (identical when all have the same number).
enum class NistRefLength {
  // E2E's measure_scores.py with mteval-v13a-sig.pl (its default): all reference words divided by
  // the largest reference count, as the padded empty references count as references.
  Mteval,
  // measure_scores.py -p (pymteval): the mean length of each hypothesis' own references, summed.
  PerHypothesis,
};
struct NistOptions {
  bool lowercase = true;  // mteval-v13a lowercases unless run with -c
  NistRefLength ref_length = NistRefLength::Mteval;
  int max_order = 5;
};
double corpus_nist(const std::vector<std::string>& hypotheses, const References& references,
                   const NistOptions& options = {});

// ---- METEOR -------------------------------------------------------------------------------
// Exact-match METEOR (Lavie & Agarwal 2007 formula; no stem, synonym or paraphrase modules).
struct MeteorParams {
  double alpha = 0.9, beta = 3.0, gamma = 0.5;
};
// One tokenised hypothesis against one tokenised reference, aligned as nltk's meteor_score aligns
// exact matches (each hypothesis word from the last takes the last unused equal reference word).
double sentence_meteor(const std::vector<std::string>& hypothesis, const std::vector<std::string>& reference,
                       const MeteorParams& params = {});
// Mean over hypotheses of the best score over their references, on tokenize_coco tokens.
double corpus_meteor(const std::vector<std::string>& hypotheses, const References& references,
                     const MeteorParams& params = {});

// ---- ROUGE-L ------------------------------------------------------------------------------
// LCS F-measure (beta 1) as rouge_score.RougeScorer(["rougeL"], use_stemmer=False).score_multi:
// the best over the references.
double sentence_rouge_l(const std::string& hypothesis, const std::vector<std::string>& references);
// Mean of sentence_rouge_l over the corpus.
double corpus_rouge_l(const std::vector<std::string>& hypotheses, const References& references);

// ---- CIDEr-D ------------------------------------------------------------------------------
// coco-caption's Cider (which is CIDEr-D): tf-idf n-gram vectors (n = 1..4) with document
// frequencies from the references of this corpus, clipped hypothesis weights, a Gaussian length
// penalty (sigma 6), averaged over n and references, times 10. Per hypothesis, on tokenize_coco
// tokens; the corpus score is their mean.
std::vector<double> cider_scores(const std::vector<std::string>& hypotheses, const References& references,
                                 double sigma = 6.0);
double corpus_cider(const std::vector<std::string>& hypotheses, const References& references, double sigma = 6.0);

// ---- all five -----------------------------------------------------------------------------
struct NlgScores {
  double bleu = 0, nist = 0, meteor = 0, rouge_l = 0, cider = 0;
};
// The five scores as E2E's measure_scores.py defines them where this file can follow it: BLEU and
// NIST lowercased (mteval-v13a without -c), NIST with NistRefLength::Mteval.
NlgScores score_corpus(const std::vector<std::string>& hypotheses, const References& references);
nlohmann::json to_json(const NlgScores& scores);  // {"bleu": .., "nist": .., "meteor": .., "rouge_l": .., "cider": ..}

}  // namespace peft::eval
