#include "peft/runtime.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace peft {

void tune_allocator() {
  const char* choice = std::getenv("PEFT_MALLOC");
  if (choice && std::strcmp(choice, "default") == 0) return;
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);         // every block from the heap (M_MMAP_THRESHOLD is capped at 32 MB)
  mallopt(M_TRIM_THRESHOLD, -1);  // never give the heap's free top back: re-faulting it costs more
#endif
}

bool load_cuda(std::string* why) {
  static std::once_flag once;
  static bool loaded = false;
  static std::string reason;
  std::call_once(once, [] {
    // The build's own LibTorch first, then the loader's search path (this program's RUNPATH included).
    std::string errors;
    for (const char* path : {PEFT_TORCH_CUDA_LIBRARY, "libtorch_cuda.so"}) {
      if (!*path) continue;
      if (::dlopen(path, RTLD_NOW | RTLD_GLOBAL)) {
        loaded = true;
        return;
      }
      const char* e = ::dlerror();
      errors += (errors.empty() ? "" : "; ") + std::string(e ? e : path);
    }
    reason = *PEFT_TORCH_CUDA_LIBRARY ? errors : "this build's LibTorch has no CUDA part (" + errors + ")";
  });
  if (!loaded && why) *why = reason;
  return loaded;
}

}  // namespace peft
