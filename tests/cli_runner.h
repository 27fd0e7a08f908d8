#pragma once
// Runs the built `peft` CLI from tests: exit status, stdout and stderr of one invocation.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace peft::test {

struct CliRun {
  int status;  // exit code, or -signal when the process was killed
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `peft ARGS` with stdin from /dev/null and `env` (shell words, e.g. "A=1 B=2" or "ulimit -f 9;")
// before the command; output goes through files in a fresh temp folder.
inline CliRun run_peft(const std::string& args, const std::string& env = "") {
  namespace fs = std::filesystem;
  static std::atomic<int> calls{0};
  const fs::path dir = fs::temp_directory_path() / fmt::format("peft-cli-run-{}-{}", ::getpid(), calls++);
  fs::create_directories(dir);
  const std::string cmd = fmt::format("{} '{}' {} > '{}' 2> '{}' < /dev/null", env, PEFT_CLI_PATH, args,
                                      (dir / "out").string(), (dir / "err").string());
  const int raw = std::system(cmd.c_str());
  int status = WIFEXITED(raw) ? WEXITSTATUS(raw) : WIFSIGNALED(raw) ? -WTERMSIG(raw) : -100;
  if (WIFEXITED(raw) && WEXITSTATUS(raw) > 128) status = -(WEXITSTATUS(raw) - 128);  // the shell reports a killed child
  CliRun r{status, slurp(dir / "out"), slurp(dir / "err")};
  fs::remove_all(dir);
  return r;
}

}  // namespace peft::test
