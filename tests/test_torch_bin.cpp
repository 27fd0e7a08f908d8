// PyTorch .bin (torch.save zip) loading.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include "peft/error.h"
#include "peft/io/torch_bin.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return peft::test::fixtures_dir() / "safetensors" / name; }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const peft::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no peft::Error thrown";
  return {};
}

// expected.json spells dtypes the safetensors way.
std::string dtype_to_torch_name(const std::string& st) {
  static const std::map<std::string, std::string> names = {
      {"F64", "Double"}, {"F32", "Float"}, {"F16", "Half"},  {"BF16", "BFloat16"}, {"I64", "Long"},
      {"I32", "Int"},    {"I16", "Short"}, {"I8", "Char"},   {"U8", "Byte"},       {"BOOL", "Bool"}};
  return names.at(st);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A file in the temp folder, removed at the end of the test.
struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name)
      : path(fs::temp_directory_path() / ("peft_torch_bin_" + std::to_string(::getpid()) + "_" + name)) {}
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  void write(const std::vector<char>& bytes) const {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
};

}  // namespace

// Loads a fixture and compares names, order, dtypes, shapes and values with expected.json.
void expect_fixture_loads_exactly(const std::string& name) {
  SCOPED_TRACE(name);
  std::ifstream in(fixture("expected.json"));
  const auto want = nlohmann::json::parse(in)[name];
  const auto tensors = peft::io::load_torch_bin(fixture(name).string());

  const auto order = want["order"].get<std::vector<std::string>>();
  ASSERT_EQ(tensors.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& [key, t] = tensors[i];
    EXPECT_EQ(key, order[i]);
    const auto& w = want["tensors"][key];
    EXPECT_EQ(c10::toString(t.scalar_type()), dtype_to_torch_name(w["dtype"].get<std::string>())) << key;
    EXPECT_EQ(t.sizes().vec(), w["shape"].get<std::vector<int64_t>>()) << key;
    const auto values = w["values"].get<std::vector<double>>();
    const torch::Tensor flat = t.reshape(-1).to(torch::kFloat64);
    ASSERT_EQ(flat.numel(), static_cast<int64_t>(values.size())) << key;
    for (int64_t j = 0; j < flat.numel(); ++j) EXPECT_EQ(flat[j].item<double>(), values[j]) << key << "[" << j << "]";
  }
}

TEST(TorchBin, LoadsOrderedDictInSavedOrderWithExactValues) { expect_fixture_loads_exactly("state_dict.bin"); }

TEST(TorchBin, LoadsModuleStateDictWithMetadataParametersAndSharedStorage) {
  expect_fixture_loads_exactly("module_state_dict.bin");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& [k, v] : peft::io::load_torch_bin(fixture("module_state_dict.bin").string())) tensors[k] = v;
  // The view keeps sharing its base's storage, two elements in.
  const auto& full = tensors.at("shared.full");
  const auto& view = tensors.at("shared.view");
  EXPECT_EQ(static_cast<const char*>(view.data_ptr()) - static_cast<const char*>(full.data_ptr()), 2 * 2);
  EXPECT_FALSE(tensors.at("param").requires_grad());
}

TEST(TorchBin, LegacyPickleIsRejectedWithAClearMessage) {
  const auto path = fixture("legacy_state_dict.bin").string();
  const std::string msg = message_of([&] { peft::io::load_torch_bin(path); });
  EXPECT_TRUE(contains(msg, path + ": not a torch.save zip checkpoint (")) << msg;
}

TEST(TorchBin, GarbageTruncatedAndMissingFilesAreErrors) {
  TempFile garbage("garbage.bin");
  garbage.write({'n', 'o', 't', ' ', 'a', ' ', 'z', 'i', 'p'});
  std::string msg = message_of([&] { peft::io::load_torch_bin(garbage.path.string()); });
  EXPECT_TRUE(contains(msg, garbage.path.string() + ": not a torch.save zip checkpoint (")) << msg;

  std::ifstream in(fixture("state_dict.bin"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() / 2);
  TempFile truncated("truncated.bin");
  truncated.write(bytes);
  msg = message_of([&] { peft::io::load_torch_bin(truncated.path.string()); });
  EXPECT_TRUE(contains(msg, truncated.path.string() + ": not a torch.save zip checkpoint (")) << msg;

  msg = message_of([&] { peft::io::load_torch_bin("/nonexistent/model.bin"); });
  EXPECT_TRUE(contains(msg, "/nonexistent/model.bin")) << msg;
}

TEST(TorchBin, NonTensorEntriesAndNonDictsAreErrorsNamingTheKey) {
  const auto epoch = fixture("with_epoch.bin").string();
  std::string from_python = message_of([&] { peft::io::load_torch_bin(epoch); });
  EXPECT_TRUE(contains(from_python, epoch) && contains(from_python, "'epoch'") && contains(from_python, "not a tensor"))
      << from_python;

  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("weight", torch::ones({2}));
  dict.insert("epoch", 3);
  TempFile with_int("with_int.bin");
  with_int.write(torch::pickle_save(c10::IValue(dict)));
  std::string msg = message_of([&] { peft::io::load_torch_bin(with_int.path.string()); });
  EXPECT_TRUE(contains(msg, with_int.path.string()) && contains(msg, "'epoch'") && contains(msg, "not a tensor")) << msg;

  TempFile list("list.bin");
  list.write(torch::pickle_save(c10::IValue(std::vector<torch::Tensor>{torch::ones({1})})));
  msg = message_of([&] { peft::io::load_torch_bin(list.path.string()); });
  EXPECT_TRUE(contains(msg, list.path.string()) && contains(msg, "not a dict of tensors")) << msg;
}

TEST(TorchBin, CorruptedPickleIsAnErrorNeverACrash) {
  std::ifstream in(fixture("state_dict.bin"), std::ios::binary);
  const std::vector<char> original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // data.pkl is stored uncompressed: find it by its first opcodes (PROTO 2, GLOBAL collections).
  const std::string start_marker = "\x80\x02" "ccollections";
  const auto it = std::search(original.begin(), original.end(), start_marker.begin(), start_marker.end());
  ASSERT_NE(it, original.end());
  const size_t pkl = static_cast<size_t>(it - original.begin());
  const size_t pkl_end = std::min(original.size(), pkl + 400);

  TempFile mutated("mutated.bin");
  int loaded = 0, rejected = 0;
  for (size_t i = pkl; i < pkl_end; ++i) {
    for (char replacement : {'\0', '\xff', static_cast<char>(original[i] + 1)}) {
      std::vector<char> bytes = original;
      bytes[i] = replacement;
      mutated.write(bytes);
      try {
        for (const auto& [name, t] : peft::io::load_torch_bin(mutated.path.string())) t.sum();
        ++loaded;
      } catch (const peft::Error& e) {
        ++rejected;
        EXPECT_TRUE(contains(e.what(), mutated.path.string())) << e.what();
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded + rejected, 300);
}
