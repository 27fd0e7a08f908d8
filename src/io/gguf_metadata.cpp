// Typed access to GGUF metadata: each getter checks the stored type and names the file and key.
#include <limits>

#include "peft/error.h"
#include "peft/io/gguf.h"

namespace peft::io {
namespace {

[[noreturn]] void metadata_wrong_type(const GgufFile& f, const std::string& key, const GgufValue& v, const char* expected) {
  if (v.type == GgufValueType::ARRAY)
    fail("{}: metadata key '{}' is an ARRAY of {}, expected {}", f.path(), key, gguf_value_type_name(v.element_type),
         expected);
  fail("{}: metadata key '{}' is {}, expected {}", f.path(), key, gguf_value_type_name(v.type), expected);
}

// An integer scalar as int64, or an error naming `key` (and `index` for array elements).
int64_t metadata_to_int(const GgufFile& f, const std::string& key, const GgufValue& v, int64_t index) {
  if (!v.is_integer()) metadata_wrong_type(f, key, v, "an integer");
  const bool is_unsigned = v.type == GgufValueType::UINT8 || v.type == GgufValueType::UINT16 ||
                           v.type == GgufValueType::UINT32 || v.type == GgufValueType::UINT64;
  if (!is_unsigned) return v.i;
  if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    if (index >= 0) fail("{}: metadata key '{}': element {} ({}) does not fit in int64", f.path(), key, index, v.u);
    fail("{}: metadata key '{}': {} does not fit in int64", f.path(), key, v.u);
  }
  return static_cast<int64_t>(v.u);
}

const GgufValue& metadata_array_of(const GgufFile& f, const std::string& key, GgufValueType element, const char* expected) {
  const GgufValue& v = f.get(key);
  if (v.type != GgufValueType::ARRAY) metadata_wrong_type(f, key, v, expected);
  if (v.count == 0) return v;  // an empty array has no meaningful element type
  GgufValue probe;
  probe.type = v.element_type;
  const bool ok = element == GgufValueType::INT64 ? probe.is_integer()
                  : element == GgufValueType::FLOAT64 ? probe.is_float()
                                                      : v.element_type == element;
  if (!ok) metadata_wrong_type(f, key, v, expected);
  return v;
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::STRING) metadata_wrong_type(*this, key, v, "STRING");
  return std::string(v.str);
}

int64_t GgufFile::get_int(const std::string& key) const { return metadata_to_int(*this, key, get(key), -1); }

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_integer()) metadata_wrong_type(*this, key, v, "an integer");
  const bool is_signed = v.type == GgufValueType::INT8 || v.type == GgufValueType::INT16 ||
                         v.type == GgufValueType::INT32 || v.type == GgufValueType::INT64;
  if (!is_signed) return v.u;
  if (v.i < 0) fail("{}: metadata key '{}' is negative ({}), expected an unsigned integer", path(), key, v.i);
  return static_cast<uint64_t>(v.i);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_float()) metadata_wrong_type(*this, key, v, "FLOAT32 or FLOAT64");
  return v.f;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::BOOL) metadata_wrong_type(*this, key, v, "BOOL");
  return v.u != 0;
}

const GgufValue& GgufFile::get_array(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::ARRAY) metadata_wrong_type(*this, key, v, "an ARRAY");
  return v;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = metadata_array_of(*this, key, GgufValueType::STRING, "an ARRAY of STRING");
  return std::vector<std::string>(v.strings.begin(), v.strings.end());
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = metadata_array_of(*this, key, GgufValueType::INT64, "an ARRAY of integers");
  std::vector<int64_t> out;
  out.reserve(v.count);
  for (uint64_t k = 0; k < v.count; ++k) out.push_back(metadata_to_int(*this, key, v.at(k), static_cast<int64_t>(k)));
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = metadata_array_of(*this, key, GgufValueType::FLOAT64, "an ARRAY of FLOAT32 or FLOAT64");
  std::vector<double> out;
  out.reserve(v.count);
  for (uint64_t k = 0; k < v.count; ++k) out.push_back(v.at(k).f);
  return out;
}

}  // namespace peft::io
