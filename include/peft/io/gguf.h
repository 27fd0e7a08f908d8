#pragma once
// Reading GGUF, the file format of llama.cpp/ggml (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
//   "GGUF" | u32 version | u64 tensor count | u64 metadata count | metadata key/values
//   | tensor table (name, dims, type, offset) | padding to the alignment | data section
// Little-endian files of versions 2 and 3 are accepted. The file is memory-mapped read-only and
// validated on open (see docs/gguf.md); tensor data is handed out as byte spans into the mapping.
// Free of LibTorch, so the fuzzer builds it alone (fuzz/fuzz_gguf.cpp).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace peft::io {

// Types of metadata values, numbered as in the file.
enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType type);  // "UINT32", ...; "unknown" outside the enum

// Tensor element types (ggml_type), numbered as in the file. Ids ggml has retired (4, 5, 31-33,
// 36-38) are unknown and rejected.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

// Storage of one element type: `block_size` elements take `type_size` bytes.
struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // "Q4_K", ...
  uint32_t block_size;
  uint32_t type_size;
};

const GgmlTypeTraits* find_ggml_type(uint32_t id);  // nullptr for ids not in GgmlType
const GgmlTypeTraits& ggml_type_traits(GgmlType type);
std::string_view ggml_type_name(GgmlType type);

// One metadata value. Scalars are widened: unsigned integers in `u`, signed in `i`, floats in `f`
// (FLOAT32 converted exactly), BOOL in `u` (0 or 1). Strings and array elements point into the
// file's mapping and stay valid as long as any GgufFile copy of it.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0.0;
  std::string_view str;  // STRING

  // ARRAY: `count` elements of `element_type`.
  GgufValueType element_type = GgufValueType::UINT8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;           // arrays of numbers or bools: the packed little-endian elements
  std::vector<std::string_view> strings;  // arrays of strings
  std::vector<GgufValue> arrays;          // arrays of arrays

  bool is_integer() const;  // UINT8..INT64 (not BOOL)
  bool is_float() const;    // FLOAT32, FLOAT64
  // Element `index` of an array as a scalar value (a copy for arrays of arrays). No bounds check.
  GgufValue at(uint64_t index) const;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> ne;  // GGUF order: ne[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;       // from the start of the data section; a multiple of the alignment
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;

  std::vector<int64_t> shape() const;  // PyTorch order: ne reversed ({} for a 0-dim tensor)
  uint64_t row_size() const;           // elements per row: ne[0] (1 for a 0-dim tensor)
  uint64_t n_rows() const;             // n_elements / row_size (0 when the tensor is empty)
};

struct GgufBytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// An opened, validated GGUF file. Copies share one mapping.
class GgufFile {
 public:
  // Maps and validates the file; throws peft::Error naming the file (and key or tensor).
  static GgufFile open(const std::string& path);
  // Validates a file held in memory without copying it: `data` must outlive the result (and
  // every copy of it). `path_for_errors` names it in messages.
  static GgufFile from_memory(const uint8_t* data, size_t size, const std::string& path_for_errors);

  const std::string& path() const;
  uint32_t version() const;
  uint64_t alignment() const;    // general.alignment, 32 by default
  uint64_t data_offset() const;  // where the data section starts in the file
  uint64_t data_bytes() const;   // bytes from there to the end of the file
  uint64_t file_bytes() const;

  // Metadata in file order; keys are unique.
  const std::vector<GgufKeyValue>& metadata() const;
  bool has(const std::string& key) const;
  const GgufValue* find(const std::string& key) const;  // nullptr if absent
  const GgufValue& get(const std::string& key) const;   // throws "key missing" naming the file

  // Typed access; each throws naming the file and key when the key is missing or holds another
  // type. Integers of any width convert if the value fits; floats are FLOAT32/FLOAT64 only.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const GgufValue& get_array(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;

  // Tensors in file order; names are unique.
  const std::vector<GgufTensorInfo>& tensors() const;
  bool has_tensor(const std::string& name) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr if absent
  const GgufTensorInfo& tensor(const std::string& name) const;       // throws naming file + tensor
  GgufBytes tensor_data(const GgufTensorInfo& tensor) const;          // its n_bytes in the mapping
  GgufBytes tensor_data(const std::string& name) const;

  struct State;  // opaque: the parser in gguf.cpp fills it

 private:
  explicit GgufFile(std::shared_ptr<const State> state);
  std::shared_ptr<const State> state_;
};

}  // namespace peft::io
