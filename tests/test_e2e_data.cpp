// E2E NLG challenge data: the CSV reader on small files made here, and the real release in
// ../shared/data/e2e (skipped when absent, a failure in CI).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "peft/data/e2e.h"
#include "peft/error.h"
#include "peft/eval/nlg_metrics.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using peft::data::E2EItem;
using peft::data::E2EPair;

// Binds `e2e_dir`: ../shared/data/e2e; skips outside CI, fails in CI, when it is missing.
#define PEFT_REQUIRE_E2E_DATA(e2e_dir)                                                   \
  PEFT_REQUIRE_SHARED_DATA(shared_dir_);                                                 \
  const fs::path e2e_dir = shared_dir_ / "e2e";                                          \
  if (!fs::is_directory(e2e_dir)) {                                                      \
    if (::peft::test::in_ci()) FAIL() << "E2E data missing in CI: " << e2e_dir;          \
    GTEST_SKIP() << e2e_dir << " not found (the E2E release: trainset.csv, ...); skipping"; \
  }

class E2ECsv : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("peft_e2e_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // The peft::Error message of reading `text`, or "no error".
  std::string error_of(const std::string& text) {
    const auto path = write("bad.csv", text);
    try {
      peft::data::read_e2e_pairs(path);
    } catch (const peft::Error& e) {
      std::string msg = e.what();
      const auto at = msg.find(path);
      return at == std::string::npos ? msg : msg.replace(at, path.size(), "FILE");
    }
    return "no error";
  }
  fs::path dir_;
};

TEST_F(E2ECsv, ReadsQuotingLikeRfc4180) {
  const auto path = write("x.csv",
                          "\xEF\xBB\xBFmr,ref\r\n"
                          "\"name[A], area[city centre]\",\"A is in the city centre, near \"\"B\"\".\"\r\n"
                          "\r\n"
                          "name[B],Plain text\r\n"
                          "\"name[A], area[city centre]\",\"Two\r\n  lines\"\n"
                          "name[C],\"\"\"quoted\"\" start\"\n");
  const auto pairs = peft::data::read_e2e_pairs(path);
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0].mr, "name[A], area[city centre]");
  EXPECT_EQ(pairs[0].ref, "A is in the city centre, near \"B\".");
  EXPECT_EQ(pairs[0].line, 2u);
  EXPECT_EQ(pairs[1].mr, "name[B]");
  EXPECT_EQ(pairs[1].ref, "Plain text");
  EXPECT_EQ(pairs[1].line, 4u);
  EXPECT_EQ(pairs[2].ref, "Two\r\n  lines");  // kept as written, as Python's csv keeps it
  EXPECT_EQ(pairs[2].line, 5u);
  EXPECT_EQ(pairs[3].ref, "\"quoted\" start");
  EXPECT_EQ(pairs[3].line, 7u);

  // Grouped per distinct MR in order of first appearance, with non-adjacent rows joined.
  const auto items = peft::data::group_by_mr(pairs);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].mr, "name[A], area[city centre]");
  EXPECT_EQ(items[0].refs, (std::vector<std::string>{"A is in the city centre, near \"B\".", "Two\r\n  lines"}));
  EXPECT_EQ(items[0].line, 2u);
  EXPECT_EQ(items[1].mr, "name[B]");
  EXPECT_EQ(items[2].mr, "name[C]");
}

TEST_F(E2ECsv, ColumnsByNameInAnyOrderAndCase) {
  const auto path = write("y.csv", "id,REF,MR\n1,text one,name[X]\n2,text two,name[X]\n3,text three,name[Y]");
  const auto pairs = peft::data::read_e2e_pairs(path);
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[2].mr, "name[Y]");
  EXPECT_EQ(pairs[2].ref, "text three");  // no final newline
  EXPECT_EQ(peft::data::read_e2e_pairs(path, 2).size(), 2u);
  const auto items = peft::data::read_e2e_items(path, 1);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].refs.size(), 2u);
  EXPECT_EQ(peft::data::read_e2e_items(path, 10).size(), 2u);
  EXPECT_EQ(peft::data::e2e_mrs(items), (std::vector<std::string>{"name[X]"}));
  EXPECT_EQ(peft::data::e2e_references(items)[0], (std::vector<std::string>{"text one", "text two"}));
}

TEST_F(E2ECsv, ErrorsNameFileAndLine) {
  EXPECT_EQ(error_of(""), "FILE: empty file");
  EXPECT_EQ(error_of("\r\n\n"), "FILE: empty file");
  EXPECT_EQ(error_of("mr,ref\n"), "FILE: no data rows (only the header)");
  EXPECT_EQ(error_of("mr,text\na,b\n"),
            "FILE: missing column 'ref' (columns: mr, text); E2E files have a header 'mr,ref'");
  EXPECT_EQ(error_of("mr,ref\na,\"open\nstill open\n"),
            "FILE:2: unterminated quoted field 2 (no closing quote before the end of the file)");
  EXPECT_EQ(error_of("mr,ref\na,b\n\"a\"x,b\n"),
            "FILE:3: text after the closing quote of field 1 (a quote inside a quoted field must be doubled)");
  EXPECT_EQ(error_of("mr,ref\na,say \"hi\"\n"),
            "FILE:2: quote inside unquoted field 2 (such a field must be quoted, with the quote doubled)");
  EXPECT_EQ(error_of("mr,ref\na,b,c\n"), "FILE:2: 3 field(s), the header has 2");
  EXPECT_EQ(error_of("mr,ref\na\n"), "FILE:2: 1 field(s), the header has 2");
  EXPECT_EQ(error_of("mr,ref\n,b\n"), "FILE:2: empty mr");
  EXPECT_EQ(error_of("mr,ref\na,\"\"\n"), "FILE:2: empty ref");
  try {
    peft::data::read_e2e_pairs((dir_ / "missing.csv").string());
    FAIL() << "no error";
  } catch (const peft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.csv: cannot open file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(peft::data::e2e_split_file("d", "validation"), peft::Error);
  EXPECT_EQ(peft::data::e2e_split_file("d", "test"), (fs::path("d") / "testset_w_refs.csv").string());
}

TEST(E2EData, ReadsTheRelease) {
  PEFT_REQUIRE_E2E_DATA(e2e_dir);
  const auto dir = e2e_dir.string();
  const auto all = peft::data::load_e2e(dir);
  EXPECT_EQ(all.train.size(), 42061u);
  ASSERT_EQ(all.dev.size(), 547u);
  ASSERT_EQ(all.test.size(), 630u);
  size_t dev_refs = 0, test_refs = 0, max_test_refs = 0;
  for (const auto& item : all.dev) dev_refs += item.refs.size();
  for (const auto& item : all.test) {
    test_refs += item.refs.size();
    max_test_refs = std::max(max_test_refs, item.refs.size());
  }
  EXPECT_EQ(dev_refs, 4672u);
  EXPECT_EQ(test_refs, 4693u);
  EXPECT_EQ(max_test_refs, 45u);
  EXPECT_EQ(all.dev[0].mr, "name[Alimentum], area[city centre], familyFriendly[no]");
  EXPECT_EQ(all.dev[0].refs.size(), 6u);
  EXPECT_EQ(all.dev[0].refs[0], "There is a place in the city centre, Alimentum, that is not family-friendly.");
  EXPECT_EQ(all.dev[0].line, 2u);
  // trainset.csv has one reference spanning two lines (a quoted \r\n): later rows count both.
  const auto& last = all.train.back();
  EXPECT_EQ(last.line, 42064u);
  size_t multiline = 0;
  for (const auto& p : all.train) multiline += p.ref.find('\n') != std::string::npos;
  EXPECT_EQ(multiline, 2u);

  const auto few = peft::data::load_e2e(dir, {100, 10, 5});
  EXPECT_EQ(few.train.size(), 100u);
  EXPECT_EQ(few.train[99].ref, all.train[99].ref);
  ASSERT_EQ(few.dev.size(), 10u);
  EXPECT_EQ(few.dev[9].refs, all.dev[9].refs);
  EXPECT_EQ(few.test.size(), 5u);
}

TEST(E2EData, DevLeaveOneOutScoresMatchTheReferenceTools) {
  // Each dev MR's first reference as the hypothesis, the others as references: BLEU against
  // sacrebleu, ROUGE-L against rouge-score, METEOR against nltk, NIST/CIDEr against the formulas
  // (tests/fixtures/nlg/e2e_dev_loo.json).
  PEFT_REQUIRE_E2E_DATA(e2e_dir);
  const auto dev = peft::data::read_e2e_items((e2e_dir / "devset.csv").string());
  std::vector<std::string> hyps;
  peft::eval::References refs;
  for (const auto& item : dev) {
    hyps.push_back(item.refs.front());
    refs.emplace_back(item.refs.begin() + 1, item.refs.end());
  }
  std::ifstream in(peft::test::fixtures_dir() / "nlg" / "e2e_dev_loo.json");
  ASSERT_TRUE(in) << "missing tests/fixtures/nlg/e2e_dev_loo.json";
  const auto e = nlohmann::json::parse(in);
  ASSERT_EQ(e["items"].get<size_t>(), dev.size());
  for (const auto& b : e["bleu"]) {
    const auto s = peft::eval::bleu_stats(hyps, refs, b["lowercase"].get<bool>());
    EXPECT_EQ(s.ref_len, b["ref_len"].get<int64_t>());
    EXPECT_EQ(s.matches[3], b["matches"][3].get<int64_t>());
    EXPECT_NEAR(s.score(), b["score"].get<double>(), 1e-12);
  }
  const auto all = peft::eval::score_corpus(hyps, refs);
  EXPECT_NEAR(all.bleu, e["bleu"][1]["score"].get<double>(), 1e-12);
  EXPECT_NEAR(all.nist, e["nist_mteval"].get<double>(), 1e-9);
  EXPECT_NEAR(all.meteor, e["meteor"].get<double>(), 1e-12);
  EXPECT_NEAR(all.rouge_l, e["rouge_l"].get<double>(), 1e-12);
  EXPECT_NEAR(all.cider, e["cider"].get<double>(), 1e-9);
  peft::eval::NistOptions per;
  per.ref_length = peft::eval::NistRefLength::PerHypothesis;
  EXPECT_NEAR(peft::eval::corpus_nist(hyps, refs, per), e["nist_per_hypothesis"].get<double>(), 1e-9);
}

}  // namespace
