// Data: GLUE layouts, users' TSV/CSV/JSONL, bad input errors (file and line), batching.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/data/batching.h"
#include "peft/data/dataset.h"
#include "peft/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace peft::data;
using ::testing::HasSubstr;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("peft-data-{}-{}", ::getpid(), counter()++);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return (path / name).string();
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const peft::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(DataTable, TsvCsvJsonl) {
  TempDir dir;
  auto tsv = read_table(dir.write("a.tsv", "\xEF\xBB\xBFtext\tlabel\r\nhello \"world\"\t1\r\n\nbye\t0\n"), {});
  EXPECT_EQ(tsv.columns, (std::vector<std::string>{"text", "label"}));  // BOM dropped
  ASSERT_EQ(tsv.rows.size(), 2u);
  EXPECT_EQ(tsv.rows[0].fields[0], "hello \"world\"");  // TSV: quotes are text
  EXPECT_EQ(tsv.rows[1].line, 4u);                       // blank line skipped, numbering kept

  auto csv = read_table(dir.write("b.csv", "text,label\n\"a, \"\"quoted\"\"\nline\",pos\nplain,neg\n"), {Format::Csv, true});
  ASSERT_EQ(csv.rows.size(), 2u);
  EXPECT_EQ(csv.rows[0].fields[0], "a, \"quoted\"\nline");
  EXPECT_EQ(csv.rows[1].line, 4u);

  auto jsonl = read_table(dir.write("c.jsonl", "{\"text\": \"x\", \"label\": 1}\n{\"label\": 0, \"text\": \"y\", \"extra\": true}\n"),
                          {Format::Jsonl, true});
  // Keys of the first object (sorted, as nlohmann::json keeps them), then new keys as they appear.
  EXPECT_EQ(jsonl.columns, (std::vector<std::string>{"label", "text", "extra"}));
  EXPECT_EQ(jsonl.rows[0].fields, (std::vector<std::string>{"1", "x", ""}));
  EXPECT_EQ(jsonl.rows[1].fields, (std::vector<std::string>{"0", "y", "true"}));
}

TEST(DataTable, BadInputNamesFileAndLine) {
  TempDir dir;
  const auto empty = dir.write("empty.tsv", "");
  EXPECT_THAT(error_of([&] { read_table(empty, {}); }), HasSubstr("empty.tsv: no data rows"));
  const auto header_only = dir.write("h.tsv", "text\tlabel\n");
  EXPECT_THAT(error_of([&] { read_table(header_only, {}); }), HasSubstr("no data rows"));
  const auto bad_utf8 = dir.write("bad.tsv", "text\tlabel\nok\t1\nbad \xC3\x28\t0\n");
  EXPECT_THAT(error_of([&] { read_table(bad_utf8, {}); }), HasSubstr("bad.tsv:3: line is not valid UTF-8"));
  const auto short_row = dir.write("short.tsv", "text\tlabel\nonly text\n");
  EXPECT_THAT(error_of([&] { read_table(short_row, {}); }), HasSubstr("short.tsv:2: 1 field(s), the header has 2"));
  const auto bad_json = dir.write("bad.jsonl", "{\"text\": \"a\"}\n{text}\n");
  EXPECT_THAT(error_of([&] { read_table(bad_json, {Format::Jsonl, true}); }), HasSubstr("bad.jsonl:2: invalid JSON"));
  EXPECT_THAT(error_of([] { format_from_path("x.parquet"); }), HasSubstr("x.parquet"));
}

TEST(DataTable, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
}

TEST(DataExamples, UserFileColumnsAndLabelMap) {
  TempDir dir;
  const auto path = dir.write("d.tsv", "id\tq\tp\ty\n1\tfirst\tsecond\tyes\n2\tthird\tfourth\tno\n");
  ColumnSpec spec;
  spec.text = "q";
  spec.text_pair = "p";
  spec.label = "y";
  Dataset d = load_examples(path, spec);
  EXPECT_EQ(d.labels, (std::vector<std::string>{"no", "yes"}));  // inferred, sorted
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(*d.examples[0].text_pair, "second");
  EXPECT_EQ(*d.examples[0].label, 1.0f);
  EXPECT_EQ(*d.examples[1].label, 0.0f);

  spec.labels = {"yes", "maybe"};
  EXPECT_THAT(error_of([&] { load_examples(path, spec); }), HasSubstr("d.tsv:3: label 'no' is not in the label map (yes, maybe)"));
  spec.labels.clear();
  spec.label = "missing";
  EXPECT_THAT(error_of([&] { load_examples(path, spec); }), HasSubstr("d.tsv: missing column 'missing' (columns: id, q, p, y)"));

  ColumnSpec reg;
  reg.text = "q";
  reg.label = "y";
  reg.regression = true;
  EXPECT_THAT(error_of([&] { load_examples(path, reg); }), HasSubstr("d.tsv:2: score 'yes' is not a number"));

  // Numeric labels sort numerically; unlabelled files read without a label column.
  const auto nums = dir.write("n.jsonl", "{\"text\": \"a\", \"label\": 10}\n{\"text\": \"b\", \"label\": 9}\n");
  EXPECT_EQ(load_examples(nums, {}).labels, (std::vector<std::string>{"9", "10"}));
  ColumnSpec unlabelled;
  unlabelled.label = "";
  EXPECT_FALSE(load_examples(nums, unlabelled).has_labels());
}

TEST(DataGlue, TaskRegistry) {
  EXPECT_EQ(glue_tasks().size(), 10u);
  EXPECT_TRUE(glue_task("stsb").regression());
  EXPECT_EQ(glue_task("mnli").labels, (std::vector<std::string>{"contradiction", "entailment", "neutral"}));
  EXPECT_EQ(glue_task("mnli-mm").dev.file, "dev_mismatched.tsv");
  EXPECT_EQ(glue_task("cola").metrics, (std::vector<std::string>{"matthews_correlation"}));
  EXPECT_THAT(error_of([] { glue_task("nope"); }), HasSubstr("unknown task 'nope'"));
}

TEST(DataGlue, SharedDataLayouts) {
  PEFT_REQUIRE_SHARED_DATA(data);
  const std::string glue = (data / "glue").string();
  struct Want { std::string task, split; size_t rows; bool pair, labelled; };
  for (const Want& w : std::vector<Want>{{"sst2", "train", 67349, false, true}, {"sst2", "dev", 872, false, true},
                                         {"sst2", "test", 1821, false, false}, {"cola", "train", 8551, false, true},
                                         {"cola", "dev", 1043, false, true}, {"cola", "test", 1063, false, false},
                                         {"mrpc", "dev", 408, true, true}, {"mrpc", "test", 1725, true, false},
                                         {"rte", "dev", 277, true, true}, {"rte", "test", 3000, true, false},
                                         {"stsb", "dev", 1500, true, true}, {"stsb", "test", 1379, true, false}}) {
    SCOPED_TRACE(w.task + " " + w.split);
    Dataset d = load_glue(glue_task(w.task), glue, w.split);
    EXPECT_EQ(d.size(), w.rows);
    EXPECT_EQ(d.examples[0].text_pair.has_value(), w.pair);
    EXPECT_EQ(d.has_labels(), w.labelled);
  }
  Dataset stsb = load_glue(glue_task("stsb"), glue + "/STS-B", "dev");
  EXPECT_TRUE(stsb.regression());
  EXPECT_GE(*stsb.examples[0].label, 0.0f);
  EXPECT_LE(*stsb.examples[0].label, 5.0f);
  Dataset sst = load_glue(glue_task("sst2"), glue, "train");
  EXPECT_EQ(std::count_if(sst.examples.begin(), sst.examples.end(), [](auto& e) { return *e.label == 1.0f; }), 37569);
}

namespace {

// A fake tokenized data set: example i has i % 7 + 2 tokens.
TokenizedDataset fake_tokens(size_t n) {
  TokenizedDataset d;
  for (size_t i = 0; i < n; ++i) {
    peft::tok::Encoding e;
    for (size_t t = 0; t < i % 7 + 2; ++t) {
      e.ids.push_back(static_cast<int64_t>(10 + i));
      e.type_ids.push_back(0);
      e.attention_mask.push_back(1);
    }
    d.encodings.push_back(e);
    d.labels.push_back(static_cast<float>(i % 2));
  }
  return d;
}

}  // namespace

TEST(DataBatching, DeterministicShuffleAndDynamicPadding) {
  auto data = fake_tokens(50);
  BatchOptions opt;
  opt.batch_size = 8;
  opt.shuffle = true;
  opt.seed = 3;
  auto a = plan_batches(data, opt, 0), b = plan_batches(data, opt, 0), c = plan_batches(data, opt, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a.back().size(), 2u);
  std::vector<size_t> all;
  for (auto& batch : a) all.insert(all.end(), batch.begin(), batch.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);

  Batch batch = collate(data, {0, 5}, torch::kCPU);  // 2 and 7 tokens
  EXPECT_EQ(batch.input.input_ids.sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(batch.input.attention_mask.sum().item<int64_t>(), 9);
  EXPECT_EQ(batch.input.input_ids[0][2].item<int64_t>(), 0);  // padded
  EXPECT_EQ(batch.labels.scalar_type(), torch::kLong);
}

TEST(DataBatching, BucketingReducesPadding) {
  auto data = fake_tokens(200);
  BatchOptions plain, bucketed;
  plain.batch_size = bucketed.batch_size = 10;
  plain.shuffle = bucketed.shuffle = true;
  bucketed.bucket_window = 20;
  auto padded_tokens = [&](const std::vector<std::vector<size_t>>& batches) {
    size_t total = 0;
    for (auto& b : batches) total += collate(data, b).input.input_ids.numel();
    return total;
  };
  EXPECT_LT(padded_tokens(plan_batches(data, bucketed, 0)), padded_tokens(plan_batches(data, plain, 0)));
}

TEST(DataExamples, SampleIsDeterministic) {
  Dataset d;
  for (int i = 0; i < 100; ++i) d.examples.push_back({std::to_string(i), std::nullopt, float(i % 3 == 0), size_t(i)});
  d.labels = {"0", "1"};
  auto s1 = sample(d, 10, 7), s2 = sample(d, 10, 7);
  ASSERT_EQ(s1.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(s1.examples[i].text, s2.examples[i].text);
  EXPECT_NEAR(majority_fraction(d), 0.66, 1e-9);
}
