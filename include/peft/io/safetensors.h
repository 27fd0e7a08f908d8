#pragma once
// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header][byte buffer]
// Files are validated as strictly as the Python `safetensors` package does (see
// docs/safetensors.md), read through a read-only memory map, and written atomically.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace peft::io {

// Element types of the format that map onto torch ScalarTypes. Other dtypes (F8_*, U16, ...)
// are rejected with an error naming the file, tensor and dtype.
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::string dtype_name(DType dtype);          // "F32", ...
size_t dtype_size(DType dtype);               // bytes per element
torch::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(torch::ScalarType type);  // throws peft::Error for types the format lacks

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data buffer
};

// An opened, validated safetensors file. Copies share one memory map.
class SafetensorsFile {
 public:
  // Maps and validates the file; throws peft::Error naming the file (and tensor) on any problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const;
  const std::map<std::string, std::string>& metadata() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming file + tensor if absent

  // A CPU tensor viewing the mapping: zero copy when the data is aligned for its dtype, otherwise
  // a copy. The mapping lives as long as any tensor returned here, even after this object is
  // gone. The mapping is read-only: writing into a zero-copy tensor crashes, so clone() before
  // modifying in place.
  torch::Tensor tensor(const std::string& name) const;

  uint64_t data_bytes() const;  // size of the byte buffer after the header

 private:
  struct State;
  explicit SafetensorsFile(std::shared_ptr<const State> state);
  std::shared_ptr<const State> state_;
};

// Writes `tensors` to `path` atomically (temp file in the same folder, fsync, rename). Tensors
// may live on any device and be non-contiguous; they are written contiguous from CPU. The layout
// matches the Python writer: data ordered by dtype (widest first) then name, so every tensor is
// aligned; header padded with spaces to a multiple of 8 bytes; "__metadata__" only when
// non-empty. Throws peft::Error for duplicate or reserved names and unsupported dtypes.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace peft::io
