#pragma once
// Parsing and validation of a safetensors header, kept free of LibTorch so that the fuzzer can
// build this part alone (fuzz/fuzz_safetensors.cpp).
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace peft::io::detail {

// Largest header the Python library accepts (its MAX_HEADER_SIZE).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeSpec {
  std::string_view name;  // as spelled in the header
  uint32_t size;          // bytes per element
  int write_rank;         // the Python writer lays tensors out by descending rank, then by name
};

// Index i describes peft::io::DType value i (safetensors.cpp checks the order at compile time).
inline constexpr std::array<DTypeSpec, 10> kDTypes = {{
    {"F64", 8, 8},
    {"F32", 4, 7},
    {"F16", 2, 4},
    {"BF16", 2, 5},
    {"I64", 8, 9},
    {"I32", 4, 6},
    {"I16", 2, 3},
    {"I8", 1, 2},
    {"U8", 1, 1},
    {"BOOL", 1, 0},
}};

struct HeaderTensor {
  std::string name;
  uint8_t dtype = 0;  // index into kDTypes
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the start of the byte buffer
};

struct ParsedHeader {
  std::vector<HeaderTensor> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the byte buffer starts in the file: 8 + header length
  uint64_t data_bytes = 0;   // size of the byte buffer
};

// Parses and validates a whole safetensors file held in memory (`data`, `size` bytes): header
// length, JSON, dtypes, shapes and offsets, and that the tensors tile the byte buffer exactly
// (as the Python library demands). Throws peft::Error naming `path_for_errors`.
ParsedHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& path_for_errors);

// Index into kDTypes, or -1 for an unknown name.
int find_dtype(std::string_view name);

}  // namespace peft::io::detail
