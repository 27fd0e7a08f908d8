// `peft train --nproc N`: runs this same command as N ranks on this machine, with torchrun's
// environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), forwards SIGINT/SIGTERM to
// them, and stops the others when one fails.
#include "launch_ranks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include <fmt/format.h>

#include "peft/error.h"

namespace peft::cli {
namespace {

std::vector<pid_t> g_children;  // for the signal handler

void forward_signal(int sig) {
  for (pid_t pid : g_children)
    if (pid > 0) ::kill(pid, sig);
}

// This process's own command line, as it was given.
std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < raw.size();) {
    const size_t end = raw.find('\0', start);
    args.push_back(raw.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (args.empty()) fail("--nproc: cannot read this process's command line (/proc/self/cmdline)");
  return args;
}

// A port that is free now on the loopback interface (the kernel picks it).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("--nproc: cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) fail("--nproc: cannot find a free port on 127.0.0.1");
  return ntohs(addr.sin_port);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "ended";
}

}  // namespace

int launch_ranks(int nproc, std::chrono::milliseconds timeout) {
  if (nproc < 2) fail("--nproc {}: give 2 or more processes", nproc);
  const std::vector<std::string> args = own_command_line();
  const int port = free_port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / unsigned(nproc)));

  g_children.assign(size_t(nproc), -1);
  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  std::cout.flush();
  std::cerr.flush();
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      forward_signal(SIGTERM);
      fail("--nproc: cannot start rank {}", rank);
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("OMP_NUM_THREADS", threads.c_str(), 0);  // the cores shared out, unless the user chose
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::cerr << "peft: error: --nproc: cannot run /proc/self/exe for rank " << rank << "\n";
      ::_exit(127);
    }
    g_children[size_t(rank)] = pid;
  }

  // Wait for every rank; once one fails, the others get `timeout` to notice and exit, then are killed.
  int first_failed = -1, first_status = 0, running = nproc;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, deadline == std::chrono::steady_clock::time_point::max() ? 0 : WNOHANG);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pid == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (pid_t child : g_children)
          if (child > 0) ::kill(child, SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      continue;
    }
    for (int rank = 0; rank < nproc; ++rank) {
      if (g_children[size_t(rank)] != pid) continue;
      g_children[size_t(rank)] = -1;
      --running;
      const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      if (failed && first_failed < 0) {
        first_failed = rank;
        first_status = status;
        deadline = std::chrono::steady_clock::now() + timeout;
      }
    }
  }
  if (first_failed >= 0)
    fail("rank {} of {} {}; the run stopped ({}resume it with --resume)", first_failed, nproc, describe(first_status),
         WIFEXITED(first_status) ? "its error is above; " : "");
  return 0;
}

}  // namespace peft::cli
