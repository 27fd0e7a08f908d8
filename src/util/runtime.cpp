#include "peft/runtime.h"

#include <cstdlib>
#include <cstring>

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

}  // namespace peft
