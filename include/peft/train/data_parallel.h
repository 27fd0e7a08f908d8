#pragma once
// Data-parallel training across processes on LibTorch's c10d: a TCPStore rendezvous (rank 0 hosts
// it) and a Gloo process group (CPU tensors; CUDA tensors are staged through the host). Every rank
// holds the whole model and a slice of each batch; gradients of the trainable tensors are summed
// across ranks, coalesced into buckets, so every rank takes the same optimizer step.
//
// The environment contract is torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace peft::train {

struct ParallelEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// Reads torchrun's variables from `env` (the process environment when empty): nullopt when
// WORLD_SIZE is unset or 1. Throws peft::Error naming the variable that is missing or malformed.
std::optional<ParallelEnv> parallel_env(const std::map<std::string, std::string>& env = {});

class DataParallel {
 public:
  // Joins the group; throws peft::Error when the store or a peer cannot be reached within `timeout`.
  // The same timeout bounds every collective: a rank that died makes the others fail, not hang.
  DataParallel(const ParallelEnv& env, std::chrono::milliseconds timeout);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }

  // Sums the tensors over all ranks, in place. Tensors of one dtype and device are flattened into
  // buckets of at most `bucket_bytes` and reduced one bucket per collective, the next bucket's copy
  // overlapping the previous bucket's reduction.
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors);
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  // Every rank's `t` (same shape and dtype on all ranks), stacked along a new first dimension, on the CPU.
  torch::Tensor all_gather(const torch::Tensor& t);
  void barrier();

  int64_t bytes_all_reduced() const { return bytes_all_reduced_; }  // payload of all_reduce_sum so far
  int64_t collectives() const { return collectives_; }
  double seconds_all_reducing() const { return seconds_all_reducing_; }  // wall time inside all_reduce_sum
  size_t bucket_bytes = 25 << 20;  // as DDP's default

 private:
  struct Group;
  ParallelEnv env_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Group> group_;
  int64_t bytes_all_reduced_ = 0, collectives_ = 0;
  double seconds_all_reducing_ = 0;
};

}  // namespace peft::train
