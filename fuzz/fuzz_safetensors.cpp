// libFuzzer target for the safetensors header parser (the part of a .safetensors file that is
// untrusted JSON and offsets). Built without LibTorch: see the PEFT_FUZZ block of CMakeLists.txt.
//
//   fuzz_safetensors -max_total_time=60 fuzz/corpus/safetensors
//
// Besides crashes and sanitizer reports, it checks what a successful parse promises: tensors
// sorted by name, each size matching shape x dtype, and together tiling the data buffer exactly.
// Errors must name the file.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "io/safetensors_header.h"
#include "peft/error.h"

namespace {

constexpr const char* kPath = "fuzz-input.safetensors";

void check(bool ok) {
  if (!ok) std::abort();
}

void check_invariants(const peft::io::detail::ParsedHeader& h, size_t size) {
  check(h.data_offset >= 8 && h.data_offset + h.data_bytes == size);
  std::vector<const peft::io::detail::HeaderTensor*> by_offset;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const auto& t = h.tensors[i];
    if (i > 0) check(h.tensors[i - 1].name < t.name);
    check(t.dtype < peft::io::detail::kDTypes.size());
    check(t.begin <= t.end && t.end <= h.data_bytes);
    unsigned __int128 bytes = peft::io::detail::kDTypes[t.dtype].size;
    for (int64_t d : t.shape) {
      check(d >= 0);
      bytes *= static_cast<uint64_t>(d);
      check(bytes <= UINT64_MAX);
    }
    check(bytes == t.end - t.begin);
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  for (const auto* t : by_offset) {
    check(t->begin == covered);
    covered = t->end;
  }
  check(covered == h.data_bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    check_invariants(peft::io::detail::parse_safetensors_header(data, size, kPath), size);
  } catch (const peft::Error& e) {
    check(std::strstr(e.what(), kPath) != nullptr);
  }
  return 0;
}
