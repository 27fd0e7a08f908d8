#include "peft/data/table.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"

namespace peft::data {
namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
    out.push_back(line.substr(start, tab - start));
  out.push_back(line.substr(start));
  return out;
}

// One CSV record starting at `line` (which may continue over further physical lines when a quoted
// field holds a newline). `next_line` supplies them; `line_no` advances with it.
std::vector<std::string> parse_csv_record(std::string line, const std::function<bool(std::string&)>& next_line,
                                          const std::string& path, size_t start_line) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0;; ++i) {
    if (i == line.size()) {
      if (!quoted) break;
      std::string more;
      if (!next_line(more)) fail("{}:{}: unterminated quoted field", path, start_line);
      field += '\n';
      line = std::move(more);
      i = static_cast<size_t>(-1);
      continue;
    }
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  fields.push_back(std::move(field));
  return fields;
}

std::string json_field_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();  // numbers as written by JSON (1, 0.5)
}

}  // namespace

Format format_from_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".tsv" || ext == ".txt") return Format::Tsv;
  if (ext == ".csv") return Format::Csv;
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return Format::Jsonl;
  fail("{}: cannot tell the format from the extension '{}' (use .tsv, .csv or .jsonl)", path, ext);
}

std::string format_name(Format format) {
  switch (format) {
    case Format::Tsv: return "tsv";
    case Format::Csv: return "csv";
    case Format::Jsonl: return "jsonl";
  }
  return "?";
}

bool is_valid_utf8(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

size_t Table::column(const std::string& name_or_index) const {
  if (auto i = find_column(name_or_index)) return *i;
  const bool numeric = !name_or_index.empty() &&
                       std::all_of(name_or_index.begin(), name_or_index.end(), [](char c) { return std::isdigit(c); });
  if (numeric && columns.empty()) return std::stoul(name_or_index);
  if (columns.empty()) fail("{}: file has no header, so column '{}' must be a 0-based number", path, name_or_index);
  fail("{}: missing column '{}' (columns: {})", path, name_or_index, fmt::join(columns, ", "));
}

std::optional<size_t> Table::find_column(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return i;
  return std::nullopt;
}

Table read_table(const std::string& path, const ReadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open file", path);
  Table table;
  table.path = path;
  size_t line_no = 0;
  auto next_line = [&](std::string& line) -> bool {
    if (!std::getline(in, line)) return false;
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!is_valid_utf8(line)) fail("{}:{}: line is not valid UTF-8", path, line_no);
    return true;
  };

  bool need_header = options.header && options.format != Format::Jsonl;
  std::vector<std::pair<std::string, size_t>> json_keys;  // JSONL: columns in first-seen order
  for (std::string line; next_line(line);) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const size_t start = line_no;
    if (options.format == Format::Jsonl) {
      nlohmann::json obj;
      try {
        obj = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        fail("{}:{}: invalid JSON ({})", path, start, e.what());
      }
      if (!obj.is_object()) fail("{}:{}: expected a JSON object per line", path, start);
      for (auto& [key, value] : obj.items())
        if (!table.find_column(key)) table.columns.push_back(key);
      Row row{start, {}};
      for (const auto& col : table.columns) row.fields.push_back(obj.contains(col) ? json_field_text(obj[col]) : "");
      table.rows.push_back(std::move(row));
      continue;
    }
    auto fields = options.format == Format::Tsv ? split_tabs(line) : parse_csv_record(line, next_line, path, start);
    if (need_header) {
      table.columns = std::move(fields);
      need_header = false;
      continue;
    }
    if (!table.columns.empty() && fields.size() < table.columns.size())
      fail("{}:{}: {} field(s), the header has {}", path, start, fields.size(), table.columns.size());
    table.rows.push_back(Row{start, std::move(fields)});
  }
  if (table.rows.empty()) fail("{}: no data rows (empty file)", path);
  // JSONL rows read before a key first appeared lack that field: pad them.
  for (auto& row : table.rows) row.fields.resize(std::max(row.fields.size(), table.columns.size()));
  return table;
}

}  // namespace peft::data
