#pragma once
// The E2E NLG challenge data (Novikova et al. 2017): CSV files with a header naming the columns
// `mr` (meaning representation, e.g. "name[Alimentum], area[city centre]") and `ref` (one human
// reference text), RFC 4180 quoting. Several rows share an MR; for evaluation the references of one
// MR are grouped. Torch-free.
#include <string>
#include <vector>

namespace peft::data {

struct E2EPair {
  std::string mr, ref;
  size_t line = 0;  // 1-based line where the row starts
};

struct E2EItem {
  std::string mr;
  std::vector<std::string> refs;  // in file order
  size_t line = 0;                // line of the MR's first row
};

// The rows of one file in order; `limit` > 0 keeps the first `limit` rows. Column names are matched
// case-insensitively, in any order; other columns are ignored. A UTF-8 BOM is dropped, lines may
// end in \n or \r\n. Throws peft::Error naming file (and line) for: a file that cannot be opened,
// an empty file or one without data rows, a missing mr/ref column, an unterminated quoted field,
// text after a closing quote, a quote inside an unquoted field, a row whose field count differs
// from the header's, an empty mr or ref.
std::vector<E2EPair> read_e2e_pairs(const std::string& path, size_t limit = 0);

// One item per distinct MR, in order of first appearance, with all of its references (also those
// on non-adjacent rows, as in trainset.csv). For devset/testset, whose rows of one MR are
// adjacent, this is the grouping of E2E's measure_scores.py.
std::vector<E2EItem> group_by_mr(const std::vector<E2EPair>& pairs);

// group_by_mr of a whole file; `limit` > 0 keeps the first `limit` MRs.
std::vector<E2EItem> read_e2e_items(const std::string& path, size_t limit = 0);

// The file of a split in the E2E release folder: "train" -> trainset.csv, "dev" -> devset.csv,
// "test" -> testset_w_refs.csv (the test set with references).
std::string e2e_split_file(const std::string& dir, const std::string& split);

struct E2ELimits {
  size_t train_samples = 0;  // first N training pairs (0: all)
  size_t dev_samples = 0;    // first N dev MRs (0: all)
  size_t test_samples = 0;   // first N test MRs (0: all)
};

struct E2EData {
  std::vector<E2EPair> train;
  std::vector<E2EItem> dev, test;
};

// All three splits from `dir` (e.g. shared/data/e2e).
E2EData load_e2e(const std::string& dir, const E2ELimits& limits = {});

// The MRs and reference lists of items, in the shapes the metrics take (peft::eval::References).
std::vector<std::string> e2e_mrs(const std::vector<E2EItem>& items);
std::vector<std::vector<std::string>> e2e_references(const std::vector<E2EItem>& items);

}  // namespace peft::data
