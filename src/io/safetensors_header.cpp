// Safetensors header validation. Rules follow the Python `safetensors` package, which is what
// writes most of the files we read, plus two stricter ones: duplicate JSON keys and dimensions
// beyond int64 are rejected.
#include "io/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "peft/error.h"

namespace peft::io::detail {
namespace {

using nlohmann::json;

// serde_json (behind the Python library) refuses to nest deeper than this; so do we, which also
// bounds the work done on hostile input.
constexpr int kMaxJsonDepth = 128;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses the JSON text, rejecting duplicate keys (nlohmann would silently keep the last one) and
// absurd nesting.
json parse_json(std::string_view text, const std::string& path) {
  // nlohmann stops at a NUL byte as if the input ended there; valid JSON never holds a raw NUL.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    fail("{}: safetensors header is not valid JSON: NUL byte at header offset {}", path, nul);
  std::vector<std::set<std::string>> keys_per_object;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) fail("{}: safetensors header nests deeper than {} levels", path, kMaxJsonDepth);
        if (event == json::parse_event_t::object_start) keys_per_object.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys_per_object.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!keys_per_object.back().insert(key).second) fail("{}: safetensors header has duplicate key '{}'", path, key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& path) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the Python library accepts null as "no metadata"
  if (!value.is_object()) fail("{}: __metadata__ is not a JSON object", path);
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) fail("{}: __metadata__ value of '{}' is not a string", path, key);
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

const json& require_field(const json& entry, const char* field, const std::string& path, const std::string& name) {
  auto it = entry.find(field);
  if (it == entry.end()) fail("{}: tensor '{}': missing \"{}\"", path, name, field);
  return *it;
}

// A JSON number that is a non-negative integer (what serde calls usize).
uint64_t require_unsigned(const json& v, const char* what, const std::string& path, const std::string& name) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail("{}: tensor '{}': negative {} {}", path, name, what, v.get<int64_t>());
  fail("{}: tensor '{}': {} is not a non-negative integer: {}", path, name, what, v.dump());
}

std::vector<int64_t> parse_shape(const json& v, const std::string& path, const std::string& name) {
  if (!v.is_array()) fail("{}: tensor '{}': \"shape\" is not an array", path, name);
  std::vector<int64_t> shape;
  for (const auto& d : v) {
    uint64_t dim = require_unsigned(d, "dimension", path, name);
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: tensor '{}': dimension {} is too large", path, name, dim);
    shape.push_back(static_cast<int64_t>(dim));
  }
  return shape;
}

// Byte size implied by shape and dtype. Overflow is an error even if a later dimension is 0,
// matching the Python library's left-to-right checked product.
uint64_t expected_bytes(const HeaderTensor& t, const std::string& path) {
  uint64_t n = kDTypes[t.dtype].size;
  for (int64_t d : t.shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      fail("{}: tensor '{}': shape overflows the size computation", path, t.name);
  }
  return n;
}

HeaderTensor parse_tensor(const std::string& name, const json& entry, uint64_t data_bytes, const std::string& path) {
  if (!entry.is_object()) fail("{}: tensor '{}': header entry is not a JSON object", path, name);
  HeaderTensor t;
  t.name = name;

  const json& dtype = require_field(entry, "dtype", path, name);
  if (!dtype.is_string()) fail("{}: tensor '{}': \"dtype\" is not a string", path, name);
  int index = find_dtype(dtype.get_ref<const std::string&>());
  if (index < 0) fail("{}: tensor '{}': unsupported dtype '{}'", path, name, dtype.get_ref<const std::string&>());
  t.dtype = static_cast<uint8_t>(index);

  t.shape = parse_shape(require_field(entry, "shape", path, name), path, name);

  const json& offsets = require_field(entry, "data_offsets", path, name);
  if (!offsets.is_array() || offsets.size() != 2)
    fail("{}: tensor '{}': \"data_offsets\" is not an array of two integers", path, name);
  t.begin = require_unsigned(offsets[0], "data offset", path, name);
  t.end = require_unsigned(offsets[1], "data offset", path, name);
  if (t.begin > t.end) fail("{}: tensor '{}': data_offsets begin {} > end {}", path, name, t.begin, t.end);
  if (t.end > data_bytes)
    fail("{}: tensor '{}': data_offsets end {} is beyond the {}-byte data buffer", path, name, t.end, data_bytes);

  uint64_t bytes = expected_bytes(t, path);
  if (bytes != t.end - t.begin)
    fail("{}: tensor '{}': shape and dtype {} need {} bytes but data_offsets span {}", path, name,
         kDTypes[t.dtype].name, bytes, t.end - t.begin);
  return t;
}

// The tensors must tile [0, data_bytes) without overlap or holes (the Python library refuses
// anything else, and a hole would hide unaccounted data).
void check_layout(const std::vector<HeaderTensor>& tensors, uint64_t data_bytes, const std::string& path) {
  std::vector<const HeaderTensor*> by_offset;
  for (const auto& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const HeaderTensor* a, const HeaderTensor* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const HeaderTensor* previous = nullptr;
  for (const HeaderTensor* t : by_offset) {
    if (t->begin < covered)
      fail("{}: tensor '{}' (bytes {}..{}) overlaps tensor '{}' (bytes {}..{})", path, t->name, t->begin, t->end,
           previous->name, previous->begin, previous->end);
    if (t->begin > covered)
      fail("{}: tensor '{}': {} unused bytes before its data (offsets must be contiguous)", path, t->name,
           t->begin - covered);
    covered = t->end;
    previous = t;
  }
  if (covered != data_bytes)
    fail("{}: {} unused bytes at the end of the data buffer ({} bytes, tensors cover {})", path, data_bytes - covered,
         data_bytes, covered);
}

}  // namespace

int find_dtype(std::string_view name) {
  for (size_t i = 0; i < kDTypes.size(); ++i)
    if (kDTypes[i].name == name) return static_cast<int>(i);
  return -1;
}

ParsedHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& path) {
  if (size < 8) fail("{}: not a safetensors file: {} bytes, too short for the 8-byte header length", path, size);
  const uint64_t header_bytes = read_u64_le(data);
  if (header_bytes > kMaxHeaderBytes)
    fail("{}: safetensors header length {} exceeds the {}-byte limit", path, header_bytes, kMaxHeaderBytes);
  if (header_bytes > size - 8)
    fail("{}: safetensors header length {} is larger than the rest of the file ({} bytes)", path, header_bytes,
         size - 8);

  ParsedHeader out;
  out.data_offset = 8 + header_bytes;
  out.data_bytes = size - out.data_offset;

  const std::string_view text(reinterpret_cast<const char*>(data + 8), header_bytes);
  const json root = parse_json(text, path);
  if (!root.is_object()) fail("{}: safetensors header is not a JSON object", path);

  for (const auto& [key, value] : root.items()) {  // nlohmann keeps object keys sorted
    if (key == "__metadata__") out.metadata = parse_metadata(value, path);
    else out.tensors.push_back(parse_tensor(key, value, out.data_bytes, path));
  }
  check_layout(out.tensors, out.data_bytes, path);
  return out;
}

}  // namespace peft::io::detail
