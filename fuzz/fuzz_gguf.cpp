// libFuzzer target for the GGUF reader and dequantizer (the whole file is untrusted: header,
// metadata, tensor table and block data). Built without LibTorch: see the PEFT_FUZZ block of
// CMakeLists.txt.
//
//   fuzz_gguf -max_total_time=60 fuzz/corpus/gguf
//
// Besides crashes and sanitizer reports, it checks what a successful parse promises: unique keys
// and tensor names, every tensor's bytes inside the data section and matching its shape and type,
// offsets aligned, no overlaps; and that dequantizing any supported tensor stays in bounds.
// Errors must name the file.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/io/gguf_dequant.h"

namespace {

constexpr const char* kPath = "fuzz-input.gguf";

void check(bool ok) {
  if (!ok) std::abort();
}

void check_invariants(const peft::io::GgufFile& f, size_t size) {
  check(f.version() == 2 || f.version() == 3);
  check(f.alignment() > 0 && (f.alignment() & (f.alignment() - 1)) == 0);
  check(f.data_offset() % f.alignment() == 0);
  check(f.file_bytes() == size);
  std::set<std::string> keys;
  for (const auto& kv : f.metadata()) check(keys.insert(kv.key).second && f.find(kv.key) == &kv.value);
  std::set<std::string> names;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& t : f.tensors()) {
    check(names.insert(t.name).second && f.find_tensor(t.name) == &t);
    const auto& traits = peft::io::ggml_type_traits(t.type);
    check(traits.type_size > 0 && t.ne.size() <= 4);
    unsigned __int128 elements = 1;
    for (uint64_t n : t.ne) elements *= n;
    check(elements == t.n_elements);
    check(t.row_size() % traits.block_size == 0);
    check(static_cast<unsigned __int128>(t.n_elements) / traits.block_size * traits.type_size == t.n_bytes);
    check(t.offset % f.alignment() == 0);
    check(t.n_bytes == 0 || f.data_offset() + t.offset + t.n_bytes <= size);
    if (t.n_bytes > 0) spans.emplace_back(t.offset, t.offset + t.n_bytes);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) check(spans[i].first >= spans[i - 1].second);
}

// Dequantizes the first rows of every supported tensor (bounded, so huge shapes stay quick).
void dequantize_some(const peft::io::GgufFile& f) {
  std::vector<float> out;
  for (const auto& t : f.tensors()) {
    if (!peft::io::can_dequantize(t.type) || t.n_rows() == 0) continue;
    const uint64_t rows = std::min<uint64_t>(t.n_rows(), std::max<uint64_t>(1, 4096 / t.row_size()));
    if (rows * t.row_size() > (1u << 20)) continue;
    out.resize(rows * t.row_size());
    peft::io::dequantize_rows(f, t, 0, rows, out.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto f = peft::io::GgufFile::from_memory(data, size, kPath);
    check_invariants(f, size);
    dequantize_some(f);
  } catch (const peft::Error& e) {
    check(std::strstr(e.what(), kPath) != nullptr);
  }
  return 0;
}
