#pragma once
// Writing GGUF files (version 3, little-endian, alignment 32): metadata key/values and F32/F16 tensors,
// written to a temp file and renamed into place. What peft.cpp writes: LoRA adapters llama.cpp loads
// (--lora) and merged models. Tensors are given in PyTorch order; the file stores ne reversed.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "peft/io/gguf.h"

namespace peft::io {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_uint32(const std::string& key, uint32_t value);
  void add_float32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  // `data` holds n_elements values of `type` (F32: float, F16: IEEE half bits) in row-major PyTorch order.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type, std::vector<uint8_t> data);
  // Writes everything to `path` atomically. Throws peft::Error naming the path on I/O errors.
  void write(const std::string& path) const;

 private:
  struct KeyValue {
    std::string key;
    GgufValueType type;
    std::vector<uint8_t> bytes;  // the encoded value
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    std::vector<uint8_t> data;
  };
  void check_new_key(const std::string& key) const;
  std::vector<KeyValue> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace peft::io
