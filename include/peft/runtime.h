#pragma once
// Process-wide settings that make LibTorch faster on the CPU. Called by the `peft` tool and the
// benchmarks at start-up; programs that embed the library may call it too.

namespace peft {

// Serves large blocks from the heap and keeps freed ones there for reuse, instead of returning them to
// the kernel. By default glibc serves every block above 32 MB (and, before its threshold adapts, above
// 128 kB) with a fresh mmap, so each training step pays page faults and kernel zeroing for its
// activations, gradients and diff-pruning gates all over again (about 40 ms per 91 MB here). The cost:
// the process keeps its peak until it exits, and blocks of varying sizes can fragment the heap.
// PEFT_MALLOC=default in the environment leaves glibc's settings alone. No-op outside glibc.
void tune_allocator();

}  // namespace peft
