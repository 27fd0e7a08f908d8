// NLG metrics against sacrebleu, rouge-score and nltk (fixtures from scripts/fixtures/make_nlg_fixtures.py).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/eval/nlg_metrics.h"
#include "test_util.h"

namespace {

using nlohmann::json;
using peft::eval::References;

json load_nlg_fixture(const std::string& name) {
  const auto path = peft::test::fixtures_dir() / "nlg" / name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing fixture " + path.string() + " (run scripts/fixtures/make_nlg_fixtures.py)");
  return json::parse(in);
}

struct NlgCorpus {
  std::vector<std::string> hyps;
  References refs;
};

// The fixture corpus with at most `cut` references per hypothesis (0: all, a varying number).
NlgCorpus nlg_corpus(size_t cut) {
  const json c = load_nlg_fixture("corpus.json");
  NlgCorpus out{c["hypotheses"].get<std::vector<std::string>>(), c["references"].get<References>()};
  if (cut)
    for (auto& seg : out.refs) seg.resize(std::min(seg.size(), cut));
  return out;
}

void expect_bleu(const json& e, const peft::eval::BleuStats& s) {
  for (size_t n = 0; n < 4; ++n) {
    EXPECT_EQ(s.matches[n], e["matches"][n].get<int64_t>()) << "order " << n + 1;
    EXPECT_EQ(s.totals[n], e["totals"][n].get<int64_t>()) << "order " << n + 1;
  }
  EXPECT_EQ(s.hyp_len, e["hyp_len"].get<int64_t>());
  EXPECT_EQ(s.ref_len, e["ref_len"].get<int64_t>());
  EXPECT_NEAR(s.score(), e["score"].get<double>(), 1e-12);
}

class NlgFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(NlgFixture, BleuMatchesSacrebleu) {
  const json e = load_nlg_fixture("expected.json")[GetParam()];
  const auto c = nlg_corpus(GetParam() == "equal4" ? 4 : 0);
  for (const auto& b : e["bleu"]) {
    SCOPED_TRACE(b["lowercase"].get<bool>() ? "lowercase" : "cased");
    expect_bleu(b, peft::eval::bleu_stats(c.hyps, c.refs, b["lowercase"].get<bool>()));
    EXPECT_NEAR(peft::eval::corpus_bleu(c.hyps, c.refs, b["lowercase"].get<bool>()), b["score"].get<double>(), 1e-12);
  }
}

TEST_P(NlgFixture, NistMatchesMtevalFormulas) {
  const json e = load_nlg_fixture("expected.json")[GetParam()];
  const auto c = nlg_corpus(GetParam() == "equal4" ? 4 : 0);
  EXPECT_NEAR(peft::eval::corpus_nist(c.hyps, c.refs), e["nist_mteval"].get<double>(), 1e-9);
  peft::eval::NistOptions per;
  per.ref_length = peft::eval::NistRefLength::PerHypothesis;
  EXPECT_NEAR(peft::eval::corpus_nist(c.hyps, c.refs, per), e["nist_per_hypothesis"].get<double>(), 1e-9);
}

TEST_P(NlgFixture, MeteorMatchesNltkExactStage) {
  const json e = load_nlg_fixture("expected.json")[GetParam()];
  const auto c = nlg_corpus(GetParam() == "equal4" ? 4 : 0);
  const auto segs = e["meteor_segments"].get<std::vector<double>>();
  for (size_t i = 0; i < c.hyps.size(); ++i) {
    double best = 0;
    for (const auto& r : c.refs[i])
      best = std::max(best, peft::eval::sentence_meteor(peft::eval::tokenize_coco(c.hyps[i]), peft::eval::tokenize_coco(r)));
    EXPECT_NEAR(best, segs[i], 1e-12) << "hypothesis " << i << ": " << c.hyps[i];
  }
  EXPECT_NEAR(peft::eval::corpus_meteor(c.hyps, c.refs), e["meteor"].get<double>(), 1e-12);
}

TEST_P(NlgFixture, RougeLMatchesRougeScore) {
  const json e = load_nlg_fixture("expected.json")[GetParam()];
  const auto c = nlg_corpus(GetParam() == "equal4" ? 4 : 0);
  const auto segs = e["rouge_l_segments"].get<std::vector<double>>();
  for (size_t i = 0; i < c.hyps.size(); ++i)
    EXPECT_NEAR(peft::eval::sentence_rouge_l(c.hyps[i], c.refs[i]), segs[i], 1e-12) << "hypothesis " << i;
  EXPECT_NEAR(peft::eval::corpus_rouge_l(c.hyps, c.refs), e["rouge_l"].get<double>(), 1e-12);
}

TEST_P(NlgFixture, CiderDMatchesCocoFormulas) {
  const json e = load_nlg_fixture("expected.json")[GetParam()];
  const auto c = nlg_corpus(GetParam() == "equal4" ? 4 : 0);
  const auto segs = e["cider_segments"].get<std::vector<double>>();
  const auto mine = peft::eval::cider_scores(c.hyps, c.refs);
  ASSERT_EQ(mine.size(), segs.size());
  for (size_t i = 0; i < segs.size(); ++i) EXPECT_NEAR(mine[i], segs[i], 1e-9) << "hypothesis " << i;
  EXPECT_NEAR(peft::eval::corpus_cider(c.hyps, c.refs), e["cider"].get<double>(), 1e-9);
}

TEST_P(NlgFixture, ScoreCorpusIsTheFiveE2EScores) {
  const json e = load_nlg_fixture("expected.json")[GetParam()];
  const auto c = nlg_corpus(GetParam() == "equal4" ? 4 : 0);
  const auto s = peft::eval::score_corpus(c.hyps, c.refs);
  EXPECT_NEAR(s.bleu, e["bleu"][1]["score"].get<double>(), 1e-12);  // lowercased, as mteval
  EXPECT_NEAR(s.nist, e["nist_mteval"].get<double>(), 1e-9);
  EXPECT_NEAR(s.meteor, e["meteor"].get<double>(), 1e-12);
  EXPECT_NEAR(s.rouge_l, e["rouge_l"].get<double>(), 1e-12);
  EXPECT_NEAR(s.cider, e["cider"].get<double>(), 1e-9);
  const json j = peft::eval::to_json(s);
  EXPECT_DOUBLE_EQ(j["bleu"].get<double>(), s.bleu);
  EXPECT_DOUBLE_EQ(j["cider"].get<double>(), s.cider);
}

INSTANTIATE_TEST_SUITE_P(Nlg, NlgFixture, ::testing::Values("ragged", "equal4"));

TEST(NlgTokenize, ThirteenAMatchesSacrebleu) {
  const json cases = load_nlg_fixture("expected.json")["tokenize_13a"];  // a copy: the file's json is a temporary
  for (const auto& c : cases) {
    const auto text = c[0].get<std::string>();
    EXPECT_EQ(peft::eval::tokenize_13a(text), c[1].get<std::vector<std::string>>()) << text;
    EXPECT_EQ(peft::eval::tokenize_13a(text, true), c[2].get<std::vector<std::string>>()) << text;
  }
}

TEST(NlgTokenize, RougeMatchesRougeScore) {
  const json cases = load_nlg_fixture("expected.json")["tokenize_rouge"];
  for (const auto& c : cases) {
    const auto text = c[0].get<std::string>();
    EXPECT_EQ(peft::eval::tokenize_rouge(text), c[1].get<std::vector<std::string>>()) << text;
  }
}

TEST(NlgTokenize, CocoDropsPunctuationAndLowercases) {
  EXPECT_EQ(peft::eval::tokenize_coco("The Eagle, (near) Café-Sicilia... isn't it?"),
            (std::vector<std::string>{"the", "eagle", "near", "café-sicilia", "isn't", "it"}));
}

TEST(NlgMetrics, NistWithOneReferenceMatchesNltk) {
  const json e = load_nlg_fixture("expected.json");
  auto c = nlg_corpus(1);
  EXPECT_NEAR(peft::eval::corpus_nist(c.hyps, c.refs), e["single_ref_nist_nltk"].get<double>(), 1e-9);
}

TEST(NlgMetrics, MeteorWorkedExample) {
  // nltk's documented example (0.6944): here every match is exact.
  const json ex = load_nlg_fixture("expected.json")["meteor_example"];
  auto lower = [](std::vector<std::string> v) {
    for (auto& w : v)
      for (char& ch : w) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return v;
  };
  const double m = peft::eval::sentence_meteor(lower(ex["hypothesis"].get<std::vector<std::string>>()),
                                               lower(ex["reference"].get<std::vector<std::string>>()));
  EXPECT_NEAR(m, ex["exact_meteor"].get<double>(), 1e-12);
  EXPECT_NEAR(m, 0.6944, 5e-5);
}

TEST(NlgMetrics, MeteorHandComputed) {
  // hyp "a b c d", ref "a b x c d": 4 matches, 2 chunks; P=1, R=0.8,
  // Fmean = 0.8 / (0.9 + 0.1*0.8) = 0.816327, penalty = 0.5 * (2/4)^3 = 0.0625.
  const double expected = (1 - 0.0625) * 0.8 / (0.9 + 0.08);
  EXPECT_NEAR(peft::eval::sentence_meteor({"a", "b", "c", "d"}, {"a", "b", "x", "c", "d"}), expected, 1e-12);
  EXPECT_EQ(peft::eval::sentence_meteor({}, {"a"}), 0.0);
  EXPECT_EQ(peft::eval::sentence_meteor({"z"}, {"a"}), 0.0);
}

TEST(NlgMetrics, IdenticalTextScoresPerfectly) {
  const std::vector<std::string> hyps = {"The Eagle is a coffee shop near Burger King.",
                                         "Alimentum serves cheap French food in the city centre."};
  const References refs = {{hyps[0], "Something else entirely."}, {hyps[1]}};
  EXPECT_NEAR(peft::eval::corpus_bleu(hyps, refs), 1.0, 1e-12);
  EXPECT_NEAR(peft::eval::corpus_rouge_l(hyps, refs), 1.0, 1e-12);
  // One chunk of 9 matches each (the final '.' is not a METEOR token): 1 - 0.5 * (1/9)^3.
  EXPECT_NEAR(peft::eval::corpus_meteor(hyps, refs), 1.0 - 0.5 / 729.0, 1e-12);
}

TEST(NlgMetrics, DegenerateCorpora) {
  // No hypothesis words: every score is 0 (sacrebleu's BLEU is 0 as well).
  const std::vector<std::string> empty = {"", ""};
  const References refs = {{"a b c"}, {"d e"}};
  EXPECT_EQ(peft::eval::corpus_bleu(empty, refs), 0.0);
  EXPECT_EQ(peft::eval::corpus_nist(empty, refs), 0.0);
  EXPECT_EQ(peft::eval::corpus_meteor(empty, refs), 0.0);
  EXPECT_EQ(peft::eval::corpus_rouge_l(empty, refs), 0.0);
  EXPECT_EQ(peft::eval::corpus_cider(empty, refs), 0.0);
  // Fewer than 4 words in the whole corpus: no 4-grams, BLEU 0.
  EXPECT_EQ(peft::eval::corpus_bleu({"a b"}, {{"a b"}}), 0.0);
}

TEST(NlgMetrics, ErrorsNameTheProblem) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const peft::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { peft::eval::corpus_bleu({"a", "b"}, {{"a"}}); }), "bleu: 2 hypotheses but 1 reference lists");
  EXPECT_EQ(message([] { peft::eval::corpus_rouge_l({"a", "b"}, {{"a"}, {}}); }), "rouge_l: hypothesis 1 has no references");
  EXPECT_EQ(message([] { peft::eval::score_corpus({}, {}); }), "score_corpus: no hypotheses");
  EXPECT_EQ(message([] {
              peft::eval::NistOptions o;
              o.max_order = 0;
              peft::eval::corpus_nist({"a"}, {{"a"}}, o);
            }),
            "nist: max_order must be >= 1 (got 0)");
}

}  // namespace
