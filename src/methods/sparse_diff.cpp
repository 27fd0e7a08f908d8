#include "peft/methods/sparse_diff.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/atomic_file.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

constexpr char kMagic[8] = {'P', 'E', 'F', 'T', 'D', 'I', 'F', '1'};

// A fast 64-bit hash (multiply-rotate over 8-byte words, splitmix finaliser): detects a different
// base or a damaged file; not a cryptographic signature.
class Hasher {
 public:
  void bytes(const void* data, size_t n) {
    const auto* c = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, c + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, c + i, n - i);
    mix(tail ^ (uint64_t(n - i) << 56));
  }
  void word(uint64_t w) { mix(w); }
  uint64_t digest() const {
    uint64_t x = h_;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }

 private:
  void mix(uint64_t w) {
    h_ ^= w * 0x9E3779B97F4A7C15ULL;
    h_ = ((h_ << 27) | (h_ >> 37)) * 0xC2B2AE3D27D4EB4FULL + 0x165667B19E3779F9ULL;
  }
  uint64_t h_ = 0x243F6A8885A308D3ULL;
};

uint64_t hash_string(std::string_view s) {
  Hasher h;
  h.bytes(s.data(), s.size());
  return h.digest();
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "F32";
    case torch::kHalf: return "F16";
    case torch::kBFloat16: return "BF16";
    default: fail("sparse diff: values must be F32, F16 or BF16 (got {})", c10::toString(t));
  }
}

torch::ScalarType dtype_from_name(const std::string& s, const std::string& where) {
  if (s == "F32") return torch::kFloat;
  if (s == "F16") return torch::kHalf;
  if (s == "BF16") return torch::kBFloat16;
  fail("{}: unknown value_dtype '{}' (expected F32, F16 or BF16)", where, s);
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_text(c10::IntArrayRef s) { return fmt::format("({})", fmt::join(s, ", ")); }

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_raw(std::string& out, const torch::Tensor& t) {
  out.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel() * t.element_size()));
}

// Parameters by HF name. Method parameters have names of their own, so no filtering is needed here.
std::map<std::string, torch::Tensor> model_tensors(Model& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& item : model.named_parameters()) out.emplace(item.key(), item.value());
  return out;
}

bool plain_cpu(const torch::Tensor& t, torch::ScalarType type) {
  return t.device().is_cpu() && t.scalar_type() == type && t.is_contiguous();
}

// Indices are strictly increasing (read_sparse_diff checks every one), so the ends bound them all.
bool indices_in_range(const torch::Tensor& idx, int64_t numel) {
  if (idx.numel() == 0) return true;
  if (plain_cpu(idx, torch::kLong)) {
    const int64_t* p = idx.data_ptr<int64_t>();
    return p[0] >= 0 && p[idx.numel() - 1] < numel;
  }
  auto [lo, hi] = torch::aminmax(idx);
  return lo.item<int64_t>() >= 0 && hi.item<int64_t>() < numel;
}

// The model tensor that `t` patches: present, with the diff's shape.
const torch::Tensor& matching_tensor(const std::map<std::string, torch::Tensor>& params, const TensorDiff& t) {
  auto it = params.find(t.name);
  if (it == params.end()) fail("diff: tensor {} is not in the model (diff made for another base model?)", t.name);
  if (it->second.sizes() != c10::IntArrayRef(t.shape))
    fail("diff: tensor {} has shape {} in the diff but {} in the model (diff made for another base model?)", t.name,
         shape_text(t.shape), shape_text(it->second.sizes()));
  return it->second;
}

// Everything apply needs, checked before anything changes.
std::vector<torch::Tensor> check_targets(const std::map<std::string, torch::Tensor>& params, const SparseDiff& diff) {
  std::vector<torch::Tensor> targets;
  for (const auto& t : diff.tensors) {
    const torch::Tensor& target = matching_tensor(params, t);
    if (t.indices.numel() != t.values.numel() || t.indices.dim() != 1)
      fail("diff: tensor {} has {} indices but {} values", t.name, t.indices.numel(), t.values.numel());
    if (!indices_in_range(t.indices, target.numel()))
      fail("diff: tensor {} has an index outside its {} entries", t.name, target.numel());
    targets.push_back(target);
  }
  return targets;
}

SparseDiff apply_checked(Model& model, const SparseDiff& diff, bool verify,
                         std::optional<uint64_t> current) {
  const auto params = model_tensors(model);
  const auto targets = check_targets(params, diff);
  std::vector<torch::Tensor> heads;
  for (const auto& [name, value] : diff.head) {
    auto it = params.find(name);
    if (it == params.end()) fail("diff: head tensor {} is not in the model", name);
    if (it->second.sizes() != value.sizes())
      fail("diff: head tensor {} has shape {} but the model's is {} (loaded with another number of labels?)", name,
           shape_text(value.sizes()), shape_text(it->second.sizes()));
    heads.push_back(it->second);
  }
  if (verify) {
    // Without a known checksum, hash the targets just resolved (what model_checksum would look up again).
    uint64_t have = 0;
    if (current) {
      have = *current;
    } else {
      std::vector<std::pair<std::string, torch::Tensor>> named;
      for (size_t i = 0; i < targets.size(); ++i) named.emplace_back(diff.tensors[i].name, targets[i]);
      have = base_checksum(named);
    }
    if (have != diff.base_checksum)
      fail("diff: base checksum {:016x} does not match the model's {:016x} (diff made for another base model?)",
           diff.base_checksum, have);
  }

  torch::NoGradGuard no_grad;
  SparseDiff undo;
  undo.set = true;
  undo.base_model = diff.base_model;
  undo.tensors.resize(targets.size());
  // The common case (CPU float) as plain loops: no per-op overhead, so switching costs O(nnz). The
  // entries of all such tensors form one range split evenly over the threads (one tensor, the word
  // embeddings, often holds half of them); the loads are scattered, so the next ones are prefetched.
  struct Job {
    float* p;
    const int64_t* idx;
    const float* v;
    float* o;
  };
  std::vector<Job> jobs;
  std::vector<int64_t> starts{0};  // jobs[j] covers entries [starts[j], starts[j + 1]) of the range
  std::vector<char> done(targets.size(), 0);
  for (size_t i = 0; i < targets.size(); ++i) {
    const auto& t = diff.tensors[i];
    auto flat = targets[i].view(-1);
    if (!plain_cpu(flat, torch::kFloat) || !plain_cpu(t.indices, torch::kLong) || !plain_cpu(t.values, torch::kFloat))
      continue;
    auto original = torch::empty({t.indices.numel()}, torch::kFloat);
    jobs.push_back({flat.data_ptr<float>(), t.indices.data_ptr<int64_t>(), t.values.data_ptr<float>(),
                    original.data_ptr<float>()});
    starts.push_back(starts.back() + t.indices.numel());
    undo.tensors[i] = {t.name, t.shape, t.indices, original};
    done[i] = 1;
  }
  const bool set = diff.set;
  at::parallel_for(0, starts.back(), 8192, [&](int64_t begin, int64_t end) {
    size_t j = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin()) - 1;
    for (; j < jobs.size() && starts[j] < end; ++j) {
      const Job& job = jobs[j];
      const int64_t from = std::max(begin, starts[j]) - starts[j], to = std::min(end, starts[j + 1]) - starts[j];
      for (int64_t k = from; k < to; ++k) {
        if (k + 64 < to) __builtin_prefetch(job.p + job.idx[k + 64], 1);
        float& entry = job.p[job.idx[k]];
        job.o[k] = entry;
        entry = set ? job.v[k] : entry + job.v[k];
      }
    }
  });
  for (size_t i = 0; i < targets.size(); ++i) {
    if (done[i]) continue;
    const auto& t = diff.tensors[i];
    auto flat = targets[i].view(-1);
    auto idx = t.indices.to(flat.device(), torch::kLong);
    undo.tensors[i] = {t.name, t.shape, t.indices, flat.index_select(0, idx).to(torch::kCPU)};
    auto values = t.values.to(flat.device(), flat.scalar_type());
    if (diff.set) flat.index_copy_(0, idx, values);
    else flat.index_add_(0, idx, values);
  }
  for (size_t i = 0; i < heads.size(); ++i) {
    undo.head.emplace_back(diff.head[i].first, heads[i].detach().to(torch::kCPU).clone());
    heads[i].copy_(diff.head[i].second);
  }
  return undo;
}

}  // namespace

int64_t SparseDiff::nnz() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.indices.numel();
  return n;
}

int64_t SparseDiff::numel() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += numel_of(t.shape);
  return n;
}

int64_t SparseDiff::dense_bytes() const {
  int64_t n = numel();
  for (const auto& [name, t] : head) n += t.numel();
  return 4 * n;
}

uint64_t base_checksum(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  Hasher h;
  for (const auto& [name, t] : tensors) {
    h.word(hash_string(name));
    h.word(static_cast<uint64_t>(t.dim()));
    for (auto d : t.sizes()) h.word(static_cast<uint64_t>(d));
    auto data = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    h.bytes(data.data_ptr(), static_cast<size_t>(data.numel()) * 4);
  }
  return h.digest();
}

uint64_t model_checksum(Model& model, const SparseDiff& diff) {
  const auto params = model_tensors(model);
  std::vector<std::pair<std::string, torch::Tensor>> list;
  for (const auto& t : diff.tensors) list.emplace_back(t.name, matching_tensor(params, t));
  return base_checksum(list);
}

void write_sparse_diff(const std::string& path, const SparseDiff& diff) {
  nlohmann::json header{{"version", 1},
                        {"kind", diff.set ? "set" : "add"},
                        {"base_checksum", fmt::format("{:016x}", diff.base_checksum)},
                        {"base_model", diff.base_model},
                        {"value_dtype", dtype_name(diff.value_dtype)},
                        {"tensors", nlohmann::json::array()},
                        {"head", nlohmann::json::array()}};
  std::string payload;
  for (const auto& t : diff.tensors) {
    if (t.indices.numel() != t.values.numel()) fail("{}: tensor {} has {} indices but {} values", path, t.name, t.indices.numel(), t.values.numel());
    auto idx = t.indices.to(torch::kCPU, torch::kLong).contiguous();
    const int64_t* p = idx.data_ptr<int64_t>();
    const size_t start = payload.size();
    int64_t prev = -1;
    for (int64_t i = 0; i < idx.numel(); ++i) {
      if (p[i] <= prev || p[i] >= numel_of(t.shape)) fail("{}: tensor {}: indices must be increasing and in range", path, t.name);
      put_varint(payload, static_cast<uint64_t>(p[i] - prev - 1));  // gaps minus one, first index from -1
      prev = p[i];
    }
    header["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"nnz", idx.numel()},
                                 {"index_bytes", payload.size() - start}});
    put_raw(payload, t.values.to(torch::kCPU).to(diff.value_dtype).contiguous());
  }
  for (const auto& [name, t] : diff.head) {
    header["head"].push_back({{"name", name}, {"shape", t.sizes().vec()}});
    put_raw(payload, t.detach().to(torch::kCPU, torch::kFloat).contiguous());
  }
  const std::string head_text = header.dump();
  std::string file(kMagic, 8);
  const uint64_t header_len = head_text.size();
  file.append(reinterpret_cast<const char*>(&header_len), 8);
  file += head_text;
  file += payload;
  Hasher h;
  h.bytes(file.data(), file.size());
  const uint64_t digest = h.digest();
  file.append(reinterpret_cast<const char*>(&digest), 8);
  io::write_file_atomically(path, file);
}

SparseDiff read_sparse_diff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string file = buffer.str();
  if (file.size() < 24 || std::memcmp(file.data(), kMagic, 8) != 0) fail("{}: not a peft diff file (bad magic or too short)", path);
  uint64_t stored, header_len;
  std::memcpy(&stored, file.data() + file.size() - 8, 8);
  Hasher h;
  h.bytes(file.data(), file.size() - 8);
  if (h.digest() != stored) fail("{}: checksum mismatch (file truncated or corrupted)", path);
  std::memcpy(&header_len, file.data() + 8, 8);
  if (header_len > file.size() - 24) fail("{}: header length {} exceeds the file", path, header_len);
  const size_t end = file.size() - 8;
  size_t off = 16 + header_len;

  SparseDiff diff;
  try {
    const auto header = nlohmann::json::parse(file.substr(16, header_len));
    if (header.at("version").get<int>() != 1) fail("{}: unsupported version {}", path, header.at("version").dump());
    const auto kind = header.at("kind").get<std::string>();
    if (kind != "add" && kind != "set") fail("{}: unknown kind '{}'", path, kind);
    diff.set = kind == "set";
    diff.base_checksum = std::stoull(header.at("base_checksum").get<std::string>(), nullptr, 16);
    diff.base_model = header.value("base_model", std::string());
    diff.value_dtype = dtype_from_name(header.at("value_dtype").get<std::string>(), path);
    const int64_t value_size = c10::elementSize(diff.value_dtype);
    auto take = [&](int64_t bytes, const std::string& what) {
      if (bytes < 0 || static_cast<uint64_t>(bytes) > end - off) fail("{}: {} runs past the end of the file", path, what);
      const size_t at = off;
      off += static_cast<size_t>(bytes);
      return file.data() + at;
    };
    for (const auto& e : header.at("tensors")) {
      TensorDiff t;
      t.name = e.at("name").get<std::string>();
      t.shape = e.at("shape").get<std::vector<int64_t>>();
      const int64_t nnz = e.at("nnz").get<int64_t>(), numel = numel_of(t.shape);
      if (nnz < 0 || nnz > numel) fail("{}: tensor {} has nnz {} of {} entries", path, t.name, nnz, numel);
      const int64_t index_bytes = e.at("index_bytes").get<int64_t>();
      const auto* p = reinterpret_cast<const unsigned char*>(take(index_bytes, t.name + " indices"));
      const auto* stop = p + index_bytes;
      t.indices = torch::empty({nnz}, torch::kLong);
      int64_t* idx = t.indices.data_ptr<int64_t>();
      int64_t prev = -1;
      for (int64_t i = 0; i < nnz; ++i) {
        uint64_t v = 0;
        for (int shift = 0;; shift += 7) {
          if (p == stop || shift > 56) fail("{}: tensor {}: bad index encoding", path, t.name);
          v |= uint64_t(*p & 0x7F) << shift;
          if (!(*p++ & 0x80)) break;
        }
        if (v >= static_cast<uint64_t>(numel - prev - 1)) fail("{}: tensor {}: index out of range", path, t.name);
        prev += static_cast<int64_t>(v) + 1;
        idx[i] = prev;
      }
      if (p != stop) fail("{}: tensor {}: {} unused index bytes", path, t.name, stop - p);
      const char* values = take(nnz * value_size, t.name + " values");
      t.values = torch::from_blob(const_cast<char*>(values), {nnz}, diff.value_dtype).to(torch::kFloat).clone();
      diff.tensors.push_back(std::move(t));
    }
    for (const auto& e : header.at("head")) {
      const auto name = e.at("name").get<std::string>();
      const auto shape = e.at("shape").get<std::vector<int64_t>>();
      const char* data = take(numel_of(shape) * 4, name);
      diff.head.emplace_back(name, torch::from_blob(const_cast<char*>(data), shape, torch::kFloat).clone());
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid header ({})", path, e.what());
  } catch (const std::logic_error& e) {  // stoull
    fail("{}: invalid header ({})", path, e.what());
  }
  if (off != end) fail("{}: {} bytes after the last tensor", path, end - off);
  return diff;
}

int64_t file_size(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  if (ec) fail("{}: {}", path, ec.message());
  return static_cast<int64_t>(n);
}

SparseDiff apply_diff(Model& model, const SparseDiff& diff, std::optional<uint64_t> current_checksum) {
  return apply_checked(model, diff, /*verify=*/true, current_checksum);
}

void revert_diff(Model& model, const SparseDiff& undo) {
  if (!undo.set) fail("revert_diff: expected an undo record (kind \"set\")");
  apply_checked(model, undo, /*verify=*/false, std::nullopt);
}

}  // namespace peft
