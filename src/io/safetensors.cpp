#include "peft/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "io/safetensors_header.h"
#include "peft/error.h"
#include "peft/io/atomic_file.h"

// The format is little-endian and tensors are used in place.
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

namespace peft::io {
namespace {

constexpr size_t index_of(DType d) { return static_cast<size_t>(d); }
constexpr bool spec_is(DType d, std::string_view name) { return detail::kDTypes[index_of(d)].name == name; }
static_assert(spec_is(DType::F64, "F64") && spec_is(DType::F32, "F32") && spec_is(DType::F16, "F16") &&
                  spec_is(DType::BF16, "BF16") && spec_is(DType::I64, "I64") && spec_is(DType::I32, "I32") &&
                  spec_is(DType::I16, "I16") && spec_is(DType::I8, "I8") && spec_is(DType::U8, "U8") &&
                  spec_is(DType::BOOL, "BOOL") && detail::kDTypes.size() == index_of(DType::BOOL) + 1,
              "detail::kDTypes must list the DType values in order");

// A read-only private mapping of a whole file; unmapped when the last user lets go.
struct Mapping {
  const uint8_t* data = nullptr;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data != nullptr) ::munmap(const_cast<uint8_t*>(data), size);
  }
};

std::shared_ptr<Mapping> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(error));
  }
  auto mapping = std::make_shared<Mapping>();
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  mapping->size = static_cast<size_t>(st.st_size);
  if (mapping->size > 0) {  // mmap refuses empty files; the parser reports them as too short
    void* addr = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      fail("{}: cannot memory-map: {}", path, std::strerror(error));
    }
    mapping->data = static_cast<const uint8_t*>(addr);
  }
  ::close(fd);  // the mapping keeps the file open
  return mapping;
}

std::optional<DType> find_scalar_type(torch::ScalarType type) {
  for (size_t i = 0; i < detail::kDTypes.size(); ++i) {
    if (to_scalar_type(static_cast<DType>(i)) == type) return static_cast<DType>(i);
  }
  return std::nullopt;
}

std::string layout_name(torch::Layout layout) {
  std::ostringstream s;
  s << layout;
  return s.str();
}

uint64_t nbytes_of(const torch::Tensor& t, DType dtype) {
  return static_cast<uint64_t>(t.numel()) * dtype_size(dtype);
}

// The header as the Python writer lays it out: "__metadata__" first, then the tensors in data
// order, padded with spaces so that the data buffer starts 8-byte aligned.
std::string build_header(const std::vector<std::tuple<std::string, DType, torch::Tensor>>& entries,
                         const std::map<std::string, std::string>& metadata, const std::string& path) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, dtype, t] : entries) {
    const uint64_t end = offset + nbytes_of(t, dtype);
    header[name] = {{"dtype", dtype_name(dtype)}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: cannot write safetensors header (names and metadata must be valid UTF-8): {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

// ---- dtypes ------------------------------------------------------------------------------------

std::string dtype_name(DType dtype) { return std::string(detail::kDTypes.at(index_of(dtype)).name); }

size_t dtype_size(DType dtype) { return detail::kDTypes.at(index_of(dtype)).size; }

torch::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  fail("invalid safetensors DType {}", static_cast<int>(dtype));
}

DType from_scalar_type(torch::ScalarType type) {
  if (auto dtype = find_scalar_type(type)) return *dtype;
  fail("dtype {} cannot be stored in safetensors", c10::toString(type));
}

// ---- reading -----------------------------------------------------------------------------------

struct SafetensorsFile::State {
  std::string path;
  std::shared_ptr<Mapping> mapping;
  std::map<std::string, std::string> metadata;
  std::map<std::string, TensorInfo> tensors;
  uint64_t data_offset = 0;
  uint64_t data_bytes = 0;
};

SafetensorsFile::SafetensorsFile(std::shared_ptr<const State> state) : state_(std::move(state)) {}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto state = std::make_shared<State>();
  state->path = path;
  state->mapping = map_file(path);
  detail::ParsedHeader header = detail::parse_safetensors_header(state->mapping->data, state->mapping->size, path);
  state->metadata = std::move(header.metadata);
  state->data_offset = header.data_offset;
  state->data_bytes = header.data_bytes;
  for (auto& t : header.tensors) {
    TensorInfo info{t.name, static_cast<DType>(t.dtype), std::move(t.shape), t.begin, t.end};
    state->tensors.emplace(std::move(t.name), std::move(info));
  }
  return SafetensorsFile(std::move(state));
}

const std::string& SafetensorsFile::path() const { return state_->path; }

const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return state_->metadata; }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(state_->tensors.size());
  for (const auto& entry : state_->tensors) names.push_back(entry.first);
  return names;
}

bool SafetensorsFile::contains(const std::string& name) const { return state_->tensors.count(name) > 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = state_->tensors.find(name);
  if (it == state_->tensors.end()) fail("{}: no tensor named '{}'", state_->path, name);
  return it->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const auto options = torch::TensorOptions().dtype(to_scalar_type(ti.dtype));
  const size_t bytes = static_cast<size_t>(ti.end - ti.begin);
  if (bytes == 0) return torch::empty(ti.shape, options);

  const uint8_t* src = state_->mapping->data + state_->data_offset + ti.begin;
  if (reinterpret_cast<uintptr_t>(src) % dtype_size(ti.dtype) == 0) {
    // Zero copy: the tensor's deleter holds the mapping alive. from_blob wants a mutable pointer;
    // the pages stay read-only.
    std::shared_ptr<Mapping> keep_alive = state_->mapping;
    return torch::from_blob(const_cast<uint8_t*>(src), ti.shape, [keep_alive](void*) {}, options);
  }
  // Misaligned for its dtype (possible with hand-made files): torch kernels need an aligned copy.
  torch::Tensor copy = torch::empty(ti.shape, options);
  std::memcpy(copy.data_ptr(), src, bytes);
  return copy;
}

uint64_t SafetensorsFile::data_bytes() const { return state_->data_bytes; }

// ---- writing -----------------------------------------------------------------------------------

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::tuple<std::string, DType, torch::Tensor>> entries;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("{}: '__metadata__' is reserved and cannot name a tensor", path);
    if (!seen.insert(name).second) fail("{}: tensor '{}' given twice", path, name);
    if (!t.defined()) fail("{}: tensor '{}' is undefined", path, name);
    if (t.layout() != torch::kStrided || t.is_meta())
      fail("{}: tensor '{}' has no dense data to write ({} layout, {} device)", path, name, layout_name(t.layout()),
           t.device().str());
    const auto dtype = find_scalar_type(t.scalar_type());
    if (!dtype) fail("{}: tensor '{}': dtype {} cannot be stored in safetensors", path, name, c10::toString(t.scalar_type()));
    entries.emplace_back(name, *dtype, t);
  }
  // Widest dtypes first, then by name: every tensor then starts aligned for its dtype.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const int rank_a = detail::kDTypes[index_of(std::get<1>(a))].write_rank;
    const int rank_b = detail::kDTypes[index_of(std::get<1>(b))].write_rank;
    if (rank_a != rank_b) return rank_a > rank_b;
    return std::get<0>(a) < std::get<0>(b);
  });
  const std::string header = build_header(entries, metadata, path);

  write_file_atomically(path, [&](std::ostream& out) {
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, dtype, t] : entries) {
      if (t.numel() == 0) continue;
      // One tensor at a time, so a GPU model is never copied to the host all at once.
      const torch::Tensor host = t.to(torch::kCPU).resolve_conj().resolve_neg().contiguous();
      out.write(static_cast<const char*>(host.data_ptr()), static_cast<std::streamsize>(nbytes_of(host, dtype)));
    }
  });
}

}  // namespace peft::io
