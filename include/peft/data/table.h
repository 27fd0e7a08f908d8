#pragma once
// Reading tabular text files (TSV, CSV, JSON lines) into rows of string fields, remembering the
// line each row came from so that later errors can name file and line.
#include <optional>
#include <string>
#include <vector>

namespace peft::data {

enum class Format { Tsv, Csv, Jsonl };

// From the file extension: .tsv/.txt -> Tsv, .csv -> Csv, .jsonl/.json/.ndjson -> Jsonl; else Error.
Format format_from_path(const std::string& path);
std::string format_name(Format format);

struct Row {
  size_t line = 0;                  // 1-based line number of the row's first line
  std::vector<std::string> fields;  // one per column (JSONL: values in `columns` order, "" if absent)
};

struct Table {
  std::string path;
  std::vector<std::string> columns;  // header names; empty for headerless TSV/CSV
  std::vector<Row> rows;

  // Index of a column given as a header name or, for headerless files, a 0-based number.
  // Throws peft::Error naming the file and listing the columns it has.
  size_t column(const std::string& name_or_index) const;
  std::optional<size_t> find_column(const std::string& name) const;
};

struct ReadOptions {
  Format format = Format::Tsv;
  bool header = true;  // JSONL always has named fields
};

// Reads the whole file. TSV is split on tabs with no quoting (GLUE's layout); CSV follows RFC 4180
// (quoted fields may hold commas, quotes and newlines). A UTF-8 BOM is dropped, a trailing '\r'
// is ignored, blank lines are skipped. Errors name file and line: non-UTF-8 text, a row with fewer
// fields than the header, invalid JSON, an empty file (no data rows).
Table read_table(const std::string& path, const ReadOptions& options);

// Whether `text` is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(const std::string& text);

}  // namespace peft::data
