// GGUF parsing and validation. The layout follows ggml's docs/gguf.md; the checks are those of
// ggml's own reader (gguf.cpp) where it has them, plus bounds on every count before anything is
// allocated, so that a hostile file costs at most memory proportional to its size.
#include "peft/io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

#include "peft/error.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF reading assumes a little-endian host"
#endif

namespace peft::io {

struct GgufFile::State {
  std::string path;
  std::shared_ptr<const void> mapping;  // keeps `data` alive; null for from_memory
  const uint8_t* data = nullptr;
  size_t size = 0;
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;
  std::vector<GgufKeyValue> metadata;
  std::unordered_map<std::string, size_t> key_index;
  std::vector<GgufTensorInfo> tensors;
  std::unordered_map<std::string, size_t> tensor_index;
};

namespace gguf_impl {
namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr size_t kMaxTensorName = 64;     // the spec's limit on tensor names
constexpr int kMaxArrayDepth = 16;        // arrays of arrays; bounds recursion on hostile input
constexpr uint64_t kMinEntryBytes = 13;   // key length + 1-byte key + value type
constexpr uint64_t kMinTensorBytes = 25;  // name length + 1-byte name + n_dims + type + offset

// Bytes per element of a fixed-size value type, 0 for STRING/ARRAY, -1 for unknown types.
int scalar_size(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: case GgufValueType::ARRAY: return 0;
  }
  return -1;
}

// Sequential little-endian reads with bounds checks; `what` says what was being read.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  const std::string& path() const { return path_; }

  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > left())
      fail("{}: truncated: {} needs {} bytes at offset {}, the file has {} left", path_, what, n, pos_, left());
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T read(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  std::string_view string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " (length)");
    if (n > left())
      fail("{}: truncated: {} is {} bytes long at offset {}, the file has {} left", path_, what, n, pos_, left());
    return {reinterpret_cast<const char*>(take(n, what)), static_cast<size_t>(n)};
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

void check_bools(const uint8_t* p, uint64_t n, const Cursor& in, const std::string& key) {
  for (uint64_t k = 0; k < n; ++k)
    if (p[k] > 1) fail("{}: metadata key '{}': BOOL value {} is neither 0 nor 1", in.path(), key, p[k]);
}

GgufValue read_value(Cursor& in, uint32_t type, const std::string& key, int depth);

void read_array(Cursor& in, GgufValue& v, const std::string& key, int depth) {
  if (depth >= kMaxArrayDepth) fail("{}: metadata key '{}': arrays nest deeper than {}", in.path(), key, kMaxArrayDepth);
  const auto element_type = in.read<uint32_t>(fmt::format("array element type of metadata key '{}'", key));
  const int size = scalar_size(element_type);
  if (size < 0) fail("{}: metadata key '{}': unknown array element type {}", in.path(), key, element_type);
  v.element_type = static_cast<GgufValueType>(element_type);
  v.count = in.read<uint64_t>(fmt::format("array length of metadata key '{}'", key));
  // Each element takes at least this many bytes: check the count before allocating for it.
  const uint64_t min_bytes = size > 0 ? size : v.element_type == GgufValueType::STRING ? 8 : 12;
  if (v.count > in.left() / min_bytes)
    fail("{}: metadata key '{}': array of {} {} elements does not fit in the {} bytes left", in.path(), key, v.count,
         gguf_value_type_name(v.element_type), in.left());
  const std::string what = fmt::format("metadata key '{}'", key);
  if (size > 0) {
    v.raw = in.take(v.count * size, what);
    if (v.element_type == GgufValueType::BOOL) check_bools(v.raw, v.count, in, key);
  } else if (v.element_type == GgufValueType::STRING) {
    v.strings.reserve(v.count);
    for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(in.string(what));
  } else {
    v.arrays.reserve(v.count);
    for (uint64_t k = 0; k < v.count; ++k) v.arrays.push_back(read_value(in, element_type, key, depth + 1));
  }
}

GgufValue read_value(Cursor& in, uint32_t type, const std::string& key, int depth) {
  const int size = scalar_size(type);
  if (size < 0) fail("{}: metadata key '{}': unknown value type {}", in.path(), key, type);
  GgufValue v;
  v.type = static_cast<GgufValueType>(type);
  const std::string what = fmt::format("metadata key '{}'", key);
  switch (v.type) {
    case GgufValueType::UINT8: v.u = in.read<uint8_t>(what); break;
    case GgufValueType::INT8: v.i = in.read<int8_t>(what); break;
    case GgufValueType::UINT16: v.u = in.read<uint16_t>(what); break;
    case GgufValueType::INT16: v.i = in.read<int16_t>(what); break;
    case GgufValueType::UINT32: v.u = in.read<uint32_t>(what); break;
    case GgufValueType::INT32: v.i = in.read<int32_t>(what); break;
    case GgufValueType::UINT64: v.u = in.read<uint64_t>(what); break;
    case GgufValueType::INT64: v.i = in.read<int64_t>(what); break;
    case GgufValueType::FLOAT32: v.f = in.read<float>(what); break;
    case GgufValueType::FLOAT64: v.f = in.read<double>(what); break;
    case GgufValueType::BOOL:
      v.u = in.read<uint8_t>(what);
      if (v.u > 1) fail("{}: metadata key '{}': BOOL value {} is neither 0 nor 1", in.path(), key, v.u);
      break;
    case GgufValueType::STRING: v.str = in.string(what); break;
    case GgufValueType::ARRAY: read_array(in, v, key, depth); break;
  }
  return v;
}

void read_header(Cursor& in, GgufFile::State& s, uint64_t& n_tensors, uint64_t& n_kv) {
  if (in.left() < 24)
    fail("{}: not a GGUF file: {} bytes, too short for the 24-byte header", s.path, in.left());
  const uint8_t* magic = in.take(4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0)
    fail("{}: not a GGUF file (magic bytes {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\")", s.path, magic[0], magic[1],
         magic[2], magic[3]);
  s.version = in.read<uint32_t>("version");
  if (s.version == 1) fail("{}: GGUF version 1 is not supported (only versions 2 and 3)", s.path);
  if (s.version != 2 && s.version != 3) {
    if ((s.version & 0xffff) == 0 && (s.version >> 16) != 0)
      fail("{}: big-endian GGUF files are not supported (version field {:#x})", s.path, s.version);
    fail("{}: unsupported GGUF version {} (only versions 2 and 3)", s.path, s.version);
  }
  n_tensors = in.read<uint64_t>("tensor count");
  n_kv = in.read<uint64_t>("metadata count");
  // Loose lower bounds on the bytes that must follow: hostile counts fail here, not in reserve().
  if (n_kv > in.left() / kMinEntryBytes)
    fail("{}: header claims {} metadata entries but only {} bytes follow", s.path, n_kv, in.left());
  if (n_tensors > in.left() / kMinTensorBytes)
    fail("{}: header claims {} tensors but only {} bytes follow", s.path, n_tensors, in.left());
}

void read_metadata(Cursor& in, GgufFile::State& s, uint64_t n_kv) {
  s.metadata.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key(in.string(fmt::format("key of metadata entry {}", k)));
    if (key.empty()) fail("{}: metadata entry {} has an empty key", s.path, k);
    if (s.key_index.count(key)) fail("{}: duplicate metadata key '{}'", s.path, key);
    const auto type = in.read<uint32_t>(fmt::format("value type of metadata key '{}'", key));
    GgufValue value = read_value(in, type, key, 0);
    s.key_index.emplace(key, s.metadata.size());
    s.metadata.push_back({std::move(key), std::move(value)});
  }
  if (auto it = s.key_index.find("general.alignment"); it != s.key_index.end()) {
    const GgufValue& v = s.metadata[it->second].value;
    if (v.type != GgufValueType::UINT32)
      fail("{}: metadata key 'general.alignment' is {}, expected UINT32", s.path, gguf_value_type_name(v.type));
    if (v.u == 0 || (v.u & (v.u - 1)) != 0)
      fail("{}: metadata key 'general.alignment' is {}, not a power of two", s.path, v.u);
    s.alignment = v.u;
  }
}

GgufTensorInfo read_tensor_info(Cursor& in, GgufFile::State& s, uint64_t index) {
  GgufTensorInfo t;
  t.name = std::string(in.string(fmt::format("name of tensor entry {}", index)));
  if (t.name.empty()) fail("{}: tensor entry {} has an empty name", s.path, index);
  if (t.name.size() > kMaxTensorName)
    fail("{}: tensor '{}': name is {} bytes long, the limit is {}", s.path, t.name, t.name.size(), kMaxTensorName);
  if (s.tensor_index.count(t.name)) fail("{}: duplicate tensor '{}'", s.path, t.name);
  const std::string what = fmt::format("tensor '{}'", t.name);

  const auto n_dims = in.read<uint32_t>(what);
  if (n_dims > kMaxDims) fail("{}: tensor '{}' has {} dimensions, at most {} are allowed", s.path, t.name, n_dims, kMaxDims);
  t.n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const auto n = in.read<uint64_t>(what);
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: tensor '{}': dimension {} is too large ({})", s.path, t.name, d, n);
    t.ne.push_back(n);
  }
  const auto type_id = in.read<uint32_t>(what);
  const GgmlTypeTraits* traits = find_ggml_type(type_id);
  if (traits == nullptr) fail("{}: tensor '{}': unknown tensor type {}", s.path, t.name, type_id);
  t.type = traits->type;
  t.offset = in.read<uint64_t>(what);

  // Element count and byte size. The product of the non-zero dimensions must fit in int64 too, so
  // that a shape is never nonsense just because another dimension is 0.
  const uint64_t row = t.row_size();
  if (row % traits->block_size != 0)
    fail("{}: tensor '{}': {} elements per row is not a multiple of {}'s block size {}", s.path, t.name, row,
         traits->name, traits->block_size);
  uint64_t bytes = 0;
  uint64_t nonzero = 1;
  bool overflow = __builtin_mul_overflow(row / traits->block_size, traits->type_size, &bytes);
  for (size_t d = 0; d < t.ne.size(); ++d) {
    overflow |= __builtin_mul_overflow(nonzero, std::max<uint64_t>(t.ne[d], 1), &nonzero);
    overflow |= __builtin_mul_overflow(t.n_elements, t.ne[d], &t.n_elements);
    if (d > 0) overflow |= __builtin_mul_overflow(bytes, t.ne[d], &bytes);
  }
  if (overflow || nonzero > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail("{}: tensor '{}': shape overflows the size computation", s.path, t.name);
  t.n_bytes = bytes;
  if (t.offset % s.alignment != 0)
    fail("{}: tensor '{}': offset {} is not a multiple of the alignment {}", s.path, t.name, t.offset, s.alignment);
  return t;
}

// Every tensor inside the data section, none overlapping another.
void check_layout(const GgufFile::State& s) {
  const uint64_t data_bytes = s.size > s.data_offset ? s.size - s.data_offset : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : s.tensors) {
    if (t.offset > data_bytes || t.n_bytes > data_bytes - t.offset)
      fail("{}: tensor '{}': data at offset {} (+{} bytes) lies outside the {}-byte data section", s.path, t.name,
           t.offset, t.n_bytes, data_bytes);
    if (t.n_bytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensorInfo* a = by_offset[k - 1];
    const GgufTensorInfo* b = by_offset[k];
    if (b->offset < a->offset + a->n_bytes)
      fail("{}: tensor '{}' (bytes {}..{}) overlaps tensor '{}' (bytes {}..{})", s.path, b->name, b->offset,
           b->offset + b->n_bytes, a->name, a->offset, a->offset + a->n_bytes);
  }
}

void parse(GgufFile::State& s) {
  Cursor in(s.data, s.size, s.path);
  uint64_t n_tensors = 0, n_kv = 0;
  read_header(in, s, n_tensors, n_kv);
  read_metadata(in, s, n_kv);
  s.tensors.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t = read_tensor_info(in, s, k);
    s.tensor_index.emplace(t.name, s.tensors.size());
    s.tensors.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment (no overflow: pos <= size).
  s.data_offset = (in.pos() + s.alignment - 1) / s.alignment * s.alignment;
  check_layout(s);
}

// A read-only private mapping of a whole file, unmapped with its last owner.
struct GgufMapping {
  void* addr = nullptr;
  size_t size = 0;
  GgufMapping() = default;
  GgufMapping(const GgufMapping&) = delete;
  GgufMapping& operator=(const GgufMapping&) = delete;
  ~GgufMapping() {
    if (addr != nullptr) ::munmap(addr, size);
  }
};

std::shared_ptr<GgufMapping> map_gguf(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(error));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  auto mapping = std::make_shared<GgufMapping>();
  mapping->size = static_cast<size_t>(st.st_size);
  if (mapping->size > 0) {  // mmap refuses empty files; the parser reports them as too short
    void* addr = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      fail("{}: cannot memory-map: {}", path, std::strerror(error));
    }
    mapping->addr = addr;
  }
  ::close(fd);  // the mapping keeps the file open
  return mapping;
}

}  // namespace
}  // namespace gguf_impl

GgufFile::GgufFile(std::shared_ptr<const State> state) : state_(std::move(state)) {}

GgufFile GgufFile::open(const std::string& path) {
  auto mapping = gguf_impl::map_gguf(path);
  auto s = std::make_shared<State>();
  s->path = path;
  s->data = static_cast<const uint8_t*>(mapping->addr);
  s->size = mapping->size;
  s->mapping = std::move(mapping);
  gguf_impl::parse(*s);
  return GgufFile(std::move(s));
}

GgufFile GgufFile::from_memory(const uint8_t* data, size_t size, const std::string& path_for_errors) {
  auto s = std::make_shared<State>();
  s->path = path_for_errors;
  s->data = data;
  s->size = size;
  gguf_impl::parse(*s);
  return GgufFile(std::move(s));
}

const std::string& GgufFile::path() const { return state_->path; }
uint32_t GgufFile::version() const { return state_->version; }
uint64_t GgufFile::alignment() const { return state_->alignment; }
uint64_t GgufFile::data_offset() const { return state_->data_offset; }
uint64_t GgufFile::data_bytes() const {
  return state_->size > state_->data_offset ? state_->size - state_->data_offset : 0;
}
uint64_t GgufFile::file_bytes() const { return state_->size; }

const std::vector<GgufKeyValue>& GgufFile::metadata() const { return state_->metadata; }

bool GgufFile::has(const std::string& key) const { return state_->key_index.count(key) > 0; }

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = state_->key_index.find(key);
  return it == state_->key_index.end() ? nullptr : &state_->metadata[it->second].value;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("{}: metadata key '{}' missing", path(), key);
  return *v;
}

const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return state_->tensors; }

bool GgufFile::has_tensor(const std::string& name) const { return state_->tensor_index.count(name) > 0; }

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = state_->tensor_index.find(name);
  return it == state_->tensor_index.end() ? nullptr : &state_->tensors[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (t == nullptr) fail("{}: tensor '{}' missing", path(), name);
  return *t;
}

GgufBytes GgufFile::tensor_data(const GgufTensorInfo& t) const {
  if (t.n_bytes == 0) return {};  // its offset may lie past the end of a file without data
  return {state_->data + state_->data_offset + t.offset, static_cast<size_t>(t.n_bytes)};
}

GgufBytes GgufFile::tensor_data(const std::string& name) const { return tensor_data(tensor(name)); }

}  // namespace peft::io
