#pragma once
#include <chrono>

namespace peft::cli {

// Runs this process's own command line as `nproc` ranks of one data-parallel group on this machine
// (torchrun's environment variables set for each; OMP_NUM_THREADS = cores / nproc unless set) and
// waits for them. Returns 0 when every rank succeeded; throws peft::Error naming the first rank that
// failed (the others are stopped within `timeout`).
int launch_ranks(int nproc, std::chrono::milliseconds timeout);

}  // namespace peft::cli
