// Tables of GGUF value types and ggml tensor types, and the small value/tensor-info helpers.
#include <cstring>

#include "peft/io/gguf.h"

namespace peft::io {
namespace {

// Block layouts as in gguf-py's GGML_QUANT_SIZES (ggml's type_traits).
constexpr GgmlTypeTraits kGgmlTypes[] = {
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},      {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},      {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q8_1, "Q8_1", 32, 40},
    {GgmlType::Q2_K, "Q2_K", 256, 84},     {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},    {GgmlType::Q8_K, "Q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66}, {GgmlType::IQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},  {GgmlType::IQ3_S, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82},   {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::I8, "I8", 1, 1},            {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},          {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},          {GgmlType::IQ1_M, "IQ1_M", 256, 56},
    {GgmlType::BF16, "BF16", 1, 2},        {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},   {GgmlType::MXFP4, "MXFP4", 32, 17},
    {GgmlType::NVFP4, "NVFP4", 64, 36},    {GgmlType::Q1_0, "Q1_0", 128, 18},
};

constexpr std::string_view kValueTypeNames[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                                "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  const auto i = static_cast<uint32_t>(type);
  return i < std::size(kValueTypeNames) ? kValueTypeNames[i] : std::string_view("unknown");
}

const GgmlTypeTraits* find_ggml_type(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (static_cast<uint32_t>(t.type) == id) return &t;
  return nullptr;
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  static constexpr GgmlTypeTraits kUnknown{GgmlType::F32, "unknown", 1, 0};
  const GgmlTypeTraits* t = find_ggml_type(static_cast<uint32_t>(type));
  return t != nullptr ? *t : kUnknown;
}

std::string_view ggml_type_name(GgmlType type) { return ggml_type_traits(type).name; }

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const { return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }

GgufValue GgufValue::at(uint64_t index) const {
  if (element_type == GgufValueType::ARRAY) return arrays[index];
  GgufValue v;
  v.type = element_type;
  if (element_type == GgufValueType::STRING) {
    v.str = strings[index];
    return v;
  }
  switch (element_type) {
    case GgufValueType::UINT8: v.u = raw[index]; break;
    case GgufValueType::BOOL: v.u = raw[index]; break;
    case GgufValueType::INT8: v.i = static_cast<int8_t>(raw[index]); break;
    case GgufValueType::UINT16: v.u = load_le<uint16_t>(raw + 2 * index); break;
    case GgufValueType::INT16: v.i = load_le<int16_t>(raw + 2 * index); break;
    case GgufValueType::UINT32: v.u = load_le<uint32_t>(raw + 4 * index); break;
    case GgufValueType::INT32: v.i = load_le<int32_t>(raw + 4 * index); break;
    case GgufValueType::UINT64: v.u = load_le<uint64_t>(raw + 8 * index); break;
    case GgufValueType::INT64: v.i = load_le<int64_t>(raw + 8 * index); break;
    case GgufValueType::FLOAT32: v.f = load_le<float>(raw + 4 * index); break;
    case GgufValueType::FLOAT64: v.f = load_le<double>(raw + 8 * index); break;
    default: break;
  }
  return v;
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return std::vector<int64_t>(ne.rbegin(), ne.rend());  // the parser keeps every dimension below 2^63
}

uint64_t GgufTensorInfo::row_size() const { return ne.empty() ? 1 : ne[0]; }

uint64_t GgufTensorInfo::n_rows() const { return row_size() == 0 ? 0 : n_elements / row_size(); }

}  // namespace peft::io
