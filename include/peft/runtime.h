#pragma once
#include <string>

// Process-wide settings: LibTorch faster on the CPU, and its CUDA part loaded only when asked for.
// Called by the `peft` tool and the benchmarks; programs that embed the library may call them too.

namespace peft {

// Serves large blocks from the heap and keeps freed ones there for reuse, instead of returning them to
// the kernel. By default glibc serves every block above 32 MB (and, before its threshold adapts, above
// 128 kB) with a fresh mmap, so each training step pays page faults and kernel zeroing for its
// activations, gradients and diff-pruning gates all over again (about 40 ms per 91 MB here). The cost:
// the process keeps its peak until it exits, and blocks of varying sizes can fragment the heap.
// PEFT_MALLOC=default in the environment leaves glibc's settings alone. No-op outside glibc.
void tune_allocator();

// LibTorch's CUDA part (libtorch_cuda.so, and through it cuBLAS, cuDNN, NCCL...) is not linked: a CPU run
// never maps it (`peft --help` peaked at 512 MB with it, 100 MB without). This loads it, once; call it
// before anything asks torch about CUDA (torch decides for good the first time). Returns false, with
// the reason in `why`, when this LibTorch has no CUDA part or it cannot be loaded.
bool load_cuda(std::string* why = nullptr);

}  // namespace peft
