// Built with USE_C10D_GLOO (CMakeLists.txt) and outside the unity batches and the PCH: the c10d and
// Gloo headers stay in this one file.
#include "peft/train/data_parallel.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <c10/util/Logging.h>
#include <torch/torch.h>

#include "peft/error.h"

namespace peft::train {
namespace {

// c10d's messages start with "[/path/file.cc:123] " and may run over several lines: keep the first
// line of what it says.
std::string short_message(const std::exception& e) {
  std::string m = e.what();
  if (m.rfind('[', 0) == 0)
    if (const size_t close = m.find("] "); close != std::string::npos) m = m.substr(close + 2);
  if (const size_t nl = m.find('\n'); nl != std::string::npos) m = m.substr(0, nl);
  return m;
}

int env_int(const std::map<std::string, std::string>& env, const std::string& key, int low, int high) {
  const auto it = env.find(key);
  if (it == env.end()) fail("environment variable {} is not set (WORLD_SIZE is: set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun does)", key);
  char* end = nullptr;
  const long v = std::strtol(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || v < low || v > high)
    fail("environment variable {}={}: expected an integer in [{}, {}]", key, it->second, low, high);
  return static_cast<int>(v);
}

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> env;
  for (const char* key : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"})
    if (const char* v = std::getenv(key)) env[key] = v;
  return env;
}

// Gloo announces each connection on stdout; the CLI's stdout carries results, so the group is
// created with stdout pointed at /dev/null.
class QuietStdout {
 public:
  QuietStdout() {
    std::cout.flush();
    std::fflush(stdout);
    saved_ = ::dup(STDOUT_FILENO);
    const int null = ::open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null >= 0) ::dup2(null, STDOUT_FILENO);
    if (null >= 0) ::close(null);
  }
  ~QuietStdout() {
    std::cout.flush();
    std::fflush(stdout);
    if (saved_ >= 0) {
      ::dup2(saved_, STDOUT_FILENO);
      ::close(saved_);
    }
  }

 private:
  int saved_ = -1;
};

}  // namespace

std::optional<ParallelEnv> parallel_env(const std::map<std::string, std::string>& given) {
  const std::map<std::string, std::string> env = given.empty() ? process_env() : given;
  if (!env.count("WORLD_SIZE")) return std::nullopt;
  ParallelEnv e;
  e.world_size = env_int(env, "WORLD_SIZE", 1, 1 << 16);
  if (e.world_size == 1) return std::nullopt;
  e.rank = env_int(env, "RANK", 0, e.world_size - 1);
  e.local_rank = env.count("LOCAL_RANK") ? env_int(env, "LOCAL_RANK", 0, e.world_size - 1) : e.rank;
  const auto addr = env.find("MASTER_ADDR");
  if (addr == env.end() || addr->second.empty()) fail("environment variable MASTER_ADDR is not set (WORLD_SIZE is)");
  e.master_addr = addr->second;
  e.master_port = env_int(env, "MASTER_PORT", 1, 65535);
  return e;
}

struct DataParallel::Group {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int saved_log_level = 0;
};

// c10d logs every connection retry and failure with a stack trace on stderr; the errors thrown here
// say what went wrong in one line, so c10's log level is FATAL while a group lives.
DataParallel::DataParallel(const ParallelEnv& env, std::chrono::milliseconds timeout)
    : env_(env), timeout_(timeout), group_(std::make_unique<Group>()) {
  if (env.world_size < 2 || env.rank < 0 || env.rank >= env.world_size)
    fail("data parallel: rank {} of world size {} is not a valid group", env.rank, env.world_size);
  group_->saved_log_level = FLAGS_caffe2_log_level;
  FLAGS_caffe2_log_level = 3;
  auto failed = [&] { FLAGS_caffe2_log_level = group_->saved_log_level; };
  const std::string where = fmt::format("{}:{}", env.master_addr, env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = env.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    group_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    failed();
    fail("rank {} of {}: cannot {} the rendezvous store at {} within {} s: {}", env.rank, env.world_size,
         env.rank == 0 ? "host" : "reach", where, timeout.count() / 1000.0, short_message(e));
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = timeout;
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(
        env.master_addr == "localhost" ? "127.0.0.1" : env.master_addr));
    QuietStdout quiet;
    group_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, env.rank, env.world_size, options);
  } catch (const std::exception& e) {
    failed();
    fail("rank {} of {}: cannot connect to the other ranks (store {}): {}", env.rank, env.world_size, where,
         short_message(e));
  }
}

DataParallel::~DataParallel() { FLAGS_caffe2_log_level = group_->saved_log_level; }

namespace {

template <typename F>
void collective(const char* what, int rank, int world, F&& run) {
  try {
    run();
  } catch (const std::exception& e) {
    fail("rank {} of {}: {} failed (another rank exited or stopped answering): {}", rank, world, what,
         short_message(e));
  }
}

}  // namespace

void DataParallel::all_reduce_sum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  // Buckets of tensors that share dtype and device, in the given order.
  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> bytes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    const bool fits = !buckets.empty() && bytes.back() + n <= bucket_bytes &&
                      tensors[buckets.back().front()].scalar_type() == t.scalar_type() &&
                      tensors[buckets.back().front()].device() == t.device();
    if (!fits) {
      buckets.emplace_back();
      bytes.push_back(0);
    }
    buckets.back().push_back(i);
    bytes.back() += n;
  }
  // Host buffers: Gloo reduces CPU memory; CUDA gradients are staged through it.
  auto flatten = [&](const std::vector<size_t>& bucket) {
    std::vector<torch::Tensor> flat;
    for (size_t i : bucket) flat.push_back(tensors[i].reshape({-1}));
    return torch::cat(flat).to(torch::kCPU);
  };
  const auto start = std::chrono::steady_clock::now();
  collective("all-reduce", env_.rank, env_.world_size, [&] {
    // Bucket k+1 is flattened while bucket k is being reduced by Gloo's worker thread.
    std::vector<torch::Tensor> current{buckets.empty() ? torch::Tensor() : flatten(buckets[0])};
    for (size_t b = 0; b < buckets.size(); ++b) {
      auto work = group_->pg->allreduce(current);
      std::vector<torch::Tensor> next;
      if (b + 1 < buckets.size()) next.push_back(flatten(buckets[b + 1]));
      if (!work->wait(timeout_)) fail("all-reduce timed out");
      int64_t offset = 0;
      for (size_t i : buckets[b]) {
        const int64_t n = tensors[i].numel();
        tensors[i].copy_(current[0].narrow(0, offset, n).view_as(tensors[i]));
        offset += n;
      }
      bytes_all_reduced_ += static_cast<int64_t>(bytes[b]);
      ++collectives_;
      current = std::move(next);
    }
  });
  seconds_all_reducing_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  torch::NoGradGuard no_grad;
  collective("broadcast", env_.rank, env_.world_size, [&] {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (const auto& t : tensors) {
      std::vector<torch::Tensor> one{t.is_contiguous() && t.is_cpu() ? t : t.to(torch::kCPU).contiguous()};
      group_->pg->broadcast(one, o)->wait(timeout_);
      if (!one[0].is_same(t)) t.copy_(one[0]);
    }
  });
}

torch::Tensor DataParallel::all_gather(const torch::Tensor& t) {
  torch::Tensor out;
  collective("all-gather", env_.rank, env_.world_size, [&] {
    std::vector<torch::Tensor> input{t.to(torch::kCPU).contiguous()};
    std::vector<std::vector<torch::Tensor>> output(1);
    for (int r = 0; r < env_.world_size; ++r) output[0].push_back(torch::empty_like(input[0]));
    group_->pg->allgather(output, input)->wait(timeout_);
    out = torch::stack(output[0]);
  });
  return out;
}

void DataParallel::barrier() {
  collective("barrier", env_.rank, env_.world_size, [&] {
    // A one-element all-reduce: Gloo's barrier does not take the timeout of a single call.
    std::vector<torch::Tensor> one{torch::zeros({1})};
    group_->pg->allreduce(one)->wait(timeout_);
  });
}

}  // namespace peft::train
