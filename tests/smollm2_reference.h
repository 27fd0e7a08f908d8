#pragma once
// The reference outputs of transformers for SmolLM2-135M-Instruct (scripts/fixtures/make_smollm2_fixtures.py).
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace peft::test {

inline const nlohmann::json& smollm2_reference() {
  static const nlohmann::json j = [] {
    std::ifstream in(fixtures_dir() / "gguf" / "smollm2-reference.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

}  // namespace peft::test
