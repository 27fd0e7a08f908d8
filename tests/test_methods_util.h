#pragma once
// Shared helpers of the method tests: tiny models, their inputs, adapted models from specs.
#include <filesystem>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/random.h"
#include "peft/methods/spec.h"
#include "peft/models/load.h"
#include "test_util.h"

namespace peft::test {

// Runs `f`, expecting a peft::Error whose one-line message contains `part`.
template <typename F>
void expect_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << part;
  } catch (const peft::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr(part));
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

inline std::filesystem::path tiny_model(const std::string& name) { return fixtures_dir() / "encoder" / name; }

inline std::map<std::string, torch::Tensor> read_tensors(const std::filesystem::path& file) {
  auto st = io::SafetensorsFile::open(file.string());
  std::map<std::string, torch::Tensor> out;
  for (auto& n : st.names()) out[n] = st.tensor(n).clone();
  return out;
}

// The batch the encoder parity fixtures use (3 rows, padding, token types for BERT).
inline ModelInput tiny_input(const std::string& model = "tiny-bert") {
  auto t = read_tensors(fixtures_dir() / "encoder" / (model + ".expected.safetensors"));
  return {t["input_ids"], t["attention_mask"], t.count("token_type_ids") ? t["token_type_ids"] : torch::Tensor()};
}

inline AdaptedModel adapted(const std::string& spec, const std::string& model = "tiny-bert") {
  AdaptedModel m(load_sequence_classifier(tiny_model(model).string()));
  m.model()->eval();
  if (!spec.empty()) m.add(make_methods(parse_method_spec(spec)));
  return m;
}

// Seeds torch's generator (dropout, initialisation) and the methods' one (AdaMix routes, diff-pruning gates).
inline void seed_all(uint64_t seed) {
  torch::manual_seed(seed);
  seed_method_generator(seed);
}

// Moves every trainable tensor away from its initial value (seeded), so that tests see real adapters.
inline void perturb(AdaptedModel& m, uint64_t seed = 1, bool include_head = true) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& t : m.trainable_tensors())
    if (include_head || t.site != "classifier") t.tensor.add_(torch::randn_like(t.tensor) * 0.1);
}

inline std::string python() { return PEFT_PYTHON_PATH; }

// Python with transformers + peft, or empty (the test then skips outside CI and fails in CI).
inline bool have_python() { return !python().empty() && std::filesystem::exists(python()); }

}  // namespace peft::test

#define PEFT_REQUIRE_PYTHON()                                                        \
  if (!::peft::test::have_python()) {                                                \
    if (::peft::test::in_ci()) FAIL() << "venv python required in CI";               \
    GTEST_SKIP() << "venv python not found; skipping";                               \
  }
