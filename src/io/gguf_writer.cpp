#include "peft/io/gguf_writer.h"

#include <cstring>

#include "peft/error.h"
#include "peft/io/atomic_file.h"

namespace peft::io {
namespace {

constexpr uint64_t kAlignment = 32;

template <typename T>
void put(std::vector<uint8_t>& out, T value) {  // the machine is little-endian, as the format
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void pad_to_alignment(std::vector<uint8_t>& out) { out.resize((out.size() + kAlignment - 1) / kAlignment * kAlignment, 0); }

}  // namespace

void GgufWriter::check_new_key(const std::string& key) const {
  if (key.empty()) fail("GGUF writer: empty metadata key");
  for (const auto& kv : metadata_)
    if (kv.key == key) fail("GGUF writer: metadata key '{}' given twice", key);
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  check_new_key(key);
  KeyValue kv{key, GgufValueType::STRING, {}};
  put_string(kv.bytes, value);
  metadata_.push_back(std::move(kv));
}

void GgufWriter::add_uint32(const std::string& key, uint32_t value) {
  check_new_key(key);
  KeyValue kv{key, GgufValueType::UINT32, {}};
  put(kv.bytes, value);
  metadata_.push_back(std::move(kv));
}

void GgufWriter::add_float32(const std::string& key, float value) {
  check_new_key(key);
  KeyValue kv{key, GgufValueType::FLOAT32, {}};
  put(kv.bytes, value);
  metadata_.push_back(std::move(kv));
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  check_new_key(key);
  KeyValue kv{key, GgufValueType::BOOL, {}};
  put<uint8_t>(kv.bytes, value ? 1 : 0);
  metadata_.push_back(std::move(kv));
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  check_new_key(key);
  KeyValue kv{key, GgufValueType::ARRAY, {}};
  put<uint32_t>(kv.bytes, static_cast<uint32_t>(GgufValueType::STRING));
  put<uint64_t>(kv.bytes, values.size());
  for (const auto& v : values) put_string(kv.bytes, v);
  metadata_.push_back(std::move(kv));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                            std::vector<uint8_t> data) {
  if (type != GgmlType::F32 && type != GgmlType::F16) fail("GGUF writer: tensor '{}': only F32 and F16 are written", name);
  for (const auto& t : tensors_)
    if (t.name == name) fail("GGUF writer: tensor '{}' given twice", name);
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) fail("GGUF writer: tensor '{}' has a dimension of {}", name, d);
    n *= uint64_t(d);
  }
  const uint64_t bytes = n * (type == GgmlType::F32 ? 4 : 2);
  if (data.size() != bytes) fail("GGUF writer: tensor '{}' has {} bytes, its shape needs {}", name, data.size(), bytes);
  tensors_.push_back({name, shape, type, std::move(data)});
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> out;
  out.insert(out.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, metadata_.size());
  for (const auto& kv : metadata_) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.type));
    out.insert(out.end(), kv.bytes.begin(), kv.bytes.end());
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(out, uint64_t(*it));  // ne[0] innermost
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  pad_to_alignment(out);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    pad_to_alignment(out);
  }
  write_file_atomically(path, std::string(reinterpret_cast<const char*>(out.data()), out.size()));
}

}  // namespace peft::io
