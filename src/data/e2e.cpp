// Reading the E2E NLG challenge CSV files. The CSV reader is strict RFC 4180 of its own rather than
// table.cpp's, which accepts stray quotes silently; here they are errors naming file and line.
#include "peft/data/e2e.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "peft/error.h"

namespace peft::data {
namespace e2e_detail {

struct CsvRecord {
  size_t line = 0;
  std::vector<std::string> fields;
};

// Splits `text` into records. Fields are separated by ',' and records by "\n" or "\r\n"; a field
// that starts with '"' is quoted and may hold commas, newlines and doubled quotes. Blank lines are
// skipped.
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& path, size_t limit) {
  std::vector<CsvRecord> records;
  size_t pos = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  size_t line = 1;
  const size_t n = text.size();
  auto at_record_end = [&](size_t p) { return p >= n || text[p] == '\n' || (text[p] == '\r' && p + 1 < n && text[p + 1] == '\n'); };
  while (pos < n && (limit == 0 || records.size() < limit)) {
    if (at_record_end(pos)) {  // blank line
      pos += text[pos] == '\r' ? 2 : 1;
      ++line;
      continue;
    }
    CsvRecord rec{line, {}};
    for (;;) {
      std::string field;
      const size_t field_no = rec.fields.size() + 1;
      if (pos < n && text[pos] == '"') {
        const size_t open_line = line;
        ++pos;
        for (;;) {
          if (pos >= n) fail("{}:{}: unterminated quoted field {} (no closing quote before the end of the file)", path, open_line, field_no);
          const char c = text[pos];
          if (c == '"') {
            if (pos + 1 < n && text[pos + 1] == '"') {
              field += '"';
              pos += 2;
              continue;
            }
            ++pos;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++pos;
        }
        if (!at_record_end(pos) && text[pos] != ',')
          fail("{}:{}: text after the closing quote of field {} (a quote inside a quoted field must be doubled)", path, line, field_no);
      } else {
        while (!at_record_end(pos) && text[pos] != ',') {
          if (text[pos] == '"')
            fail("{}:{}: quote inside unquoted field {} (such a field must be quoted, with the quote doubled)", path, line, field_no);
          field += text[pos++];
        }
      }
      rec.fields.push_back(std::move(field));
      if (pos < n && text[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < n) pos += text[pos] == '\r' ? 2 : 1;  // the record's line ending
      ++line;
      break;
    }
    records.push_back(std::move(rec));
  }
  return records;
}

std::string lower_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace e2e_detail

std::vector<E2EPair> read_e2e_pairs(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open file", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail("{}: empty file", path);

  // The header plus `limit` rows (blank lines are not records).
  const auto records = e2e_detail::parse_csv(text, path, limit == 0 ? 0 : limit + 1);
  const auto& header = records.front().fields;
  auto column = [&](const char* name) {
    for (size_t i = 0; i < header.size(); ++i)
      if (e2e_detail::lower_ascii(header[i]) == name) return i;
    fail("{}: missing column '{}' (columns: {}); E2E files have a header 'mr,ref'", path, name, fmt::join(header, ", "));
  };
  const size_t mr_col = column("mr"), ref_col = column("ref");
  if (records.size() < 2) fail("{}: no data rows (only the header)", path);

  std::vector<E2EPair> pairs;
  pairs.reserve(records.size() - 1);
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& rec = records[r];
    if (rec.fields.size() != header.size())
      fail("{}:{}: {} field(s), the header has {}", path, rec.line, rec.fields.size(), header.size());
    if (rec.fields[mr_col].empty()) fail("{}:{}: empty mr", path, rec.line);
    if (rec.fields[ref_col].empty()) fail("{}:{}: empty ref", path, rec.line);
    pairs.push_back(E2EPair{rec.fields[mr_col], rec.fields[ref_col], rec.line});
  }
  return pairs;
}

std::vector<E2EItem> group_by_mr(const std::vector<E2EPair>& pairs) {
  std::vector<E2EItem> items;
  std::unordered_map<std::string, size_t> index;
  for (const auto& p : pairs) {
    auto [it, inserted] = index.emplace(p.mr, items.size());
    if (inserted) items.push_back(E2EItem{p.mr, {}, p.line});
    items[it->second].refs.push_back(p.ref);
  }
  return items;
}

std::vector<E2EItem> read_e2e_items(const std::string& path, size_t limit) {
  auto items = group_by_mr(read_e2e_pairs(path));
  if (limit > 0 && items.size() > limit) items.resize(limit);
  return items;
}

std::string e2e_split_file(const std::string& dir, const std::string& split) {
  const char* file = split == "train" ? "trainset.csv"
                     : split == "dev" ? "devset.csv"
                     : split == "test" ? "testset_w_refs.csv"
                                       : nullptr;
  if (!file) fail("e2e: unknown split '{}' (train, dev, test)", split);
  return (std::filesystem::path(dir) / file).string();
}

E2EData load_e2e(const std::string& dir, const E2ELimits& limits) {
  E2EData data;
  data.train = read_e2e_pairs(e2e_split_file(dir, "train"), limits.train_samples);
  data.dev = read_e2e_items(e2e_split_file(dir, "dev"), limits.dev_samples);
  data.test = read_e2e_items(e2e_split_file(dir, "test"), limits.test_samples);
  return data;
}

std::vector<std::string> e2e_mrs(const std::vector<E2EItem>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) out.push_back(item.mr);
  return out;
}

std::vector<std::vector<std::string>> e2e_references(const std::vector<E2EItem>& items) {
  std::vector<std::vector<std::string>> out;
  for (const auto& item : items) out.push_back(item.refs);
  return out;
}

}  // namespace peft::data
