// GGUF export of LoRA adapters for llama.cpp: the writer's files read back (our reader and the `gguf`
// package), llama.cpp's names and metadata, Q/K row permutation of B, rsLoRA's alpha, and errors.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/io/gguf_writer.h"
#include "peft/methods/gguf_lora.h"
#include "test_methods_util.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

fs::path decoder_dir(const std::string& name) { return peft::test::fixtures_dir() / "decoder" / name; }

nlohmann::json base_config(const std::string& name) {
  std::ifstream in(decoder_dir(name) / "config.json");
  return nlohmann::json::parse(in);
}

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / fmt::format("peft-gguf-lora-{}-{}", ::getpid(), name);
}

torch::Tensor gguf_tensor(const peft::io::GgufFile& f, const std::string& name) {
  const auto& info = f.tensor(name);
  const auto bytes = f.tensor_data(info);
  return torch::from_blob(const_cast<uint8_t*>(bytes.data), {int64_t(info.n_elements)}, torch::kFloat)
      .clone()
      .reshape(info.shape());
}

TEST(GgufLora, LlamaAdapterHasLlamaCppNamesMetadataAndPermutedQkRows) {
  const fs::path out = temp_file("lora-llama.gguf");
  peft::export_gguf_lora(decoder_dir("lora-llama").string(), base_config("tiny-llama"), out.string());
  const auto f = peft::io::GgufFile::open(out.string());
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string("general.type"), "adapter");
  EXPECT_EQ(f.get_string("adapter.type"), "lora");
  EXPECT_FLOAT_EQ(f.get_float("adapter.lora.alpha"), 16.0f);
  EXPECT_EQ(f.tensors().size(), 2u * 4u * 2u);  // 2 layers x {q, v, o, gate} x {a, b}

  const auto peft_tensors = peft::test::read_tensors(decoder_dir("lora-llama") / "adapter_model.safetensors");
  const std::string prefix = "base_model.model.model.layers.1.";
  EXPECT_TRUE(torch::equal(gguf_tensor(f, "blk.1.attn_q.weight.lora_a"), peft_tensors.at(prefix + "self_attn.q_proj.lora_A.weight")));
  EXPECT_TRUE(torch::equal(gguf_tensor(f, "blk.1.ffn_gate.weight.lora_b"), peft_tensors.at(prefix + "mlp.gate_proj.lora_B.weight")));
  EXPECT_TRUE(torch::equal(gguf_tensor(f, "blk.1.attn_v.weight.lora_b"), peft_tensors.at(prefix + "self_attn.v_proj.lora_B.weight")));
  // Q rows as llama.cpp stores them: per head, GGUF row 2d + a is HF row a * half + d (head_dim 8, 4 heads).
  const torch::Tensor b = peft_tensors.at(prefix + "self_attn.q_proj.lora_B.weight");
  const torch::Tensor g = gguf_tensor(f, "blk.1.attn_q.weight.lora_b");
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t d = 0; d < 4; ++d)
      for (int64_t a = 0; a < 2; ++a) EXPECT_TRUE(torch::equal(g[h * 8 + 2 * d + a], b[h * 8 + a * 4 + d]));
  EXPECT_EQ(f.tensor("blk.0.attn_output.weight.lora_a").shape(), (std::vector<int64_t>{4, 32}));  // r x in
  fs::remove(out);
}

TEST(GgufLora, RsloraAlphaCarriesTheScaleAndTheGgufPackageReadsTheFile) {
  const fs::path out = temp_file("rslora.gguf");
  peft::export_gguf_lora(decoder_dir("lora-llama-rslora").string(), base_config("tiny-llama"), out.string());
  const auto f = peft::io::GgufFile::open(out.string());
  EXPECT_FLOAT_EQ(f.get_float("adapter.lora.alpha"), 32.0f);  // alpha/r = 16/sqrt(4) = 8 = 32/4
  if (peft::test::have_python()) {
    const std::string cmd = fmt::format(
        "'{}' -c \"import gguf,sys; r=gguf.GGUFReader(sys.argv[1]); "
        "assert bytes(r.fields['adapter.type'].parts[-1]).decode()=='lora'; "
        "assert len(r.tensors)==16 and all(t.name.endswith(('.lora_a','.lora_b')) for t in r.tensors)\" '{}'",
        peft::test::python(), out.string());
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  fs::remove(out);
}

TEST(GgufLora, NonLoraAdaptersAndOtherBasesAreRefused) {
  const fs::path out = temp_file("bad.gguf");
  peft::test::expect_error(
      [&] { peft::export_gguf_lora(decoder_dir("ia3-llama").string(), base_config("tiny-llama"), out.string()); },
      "is not LORA");
  peft::test::expect_error(
      [&] { peft::export_gguf_lora(decoder_dir("lora-gpt2").string(), base_config("tiny-gpt2"), out.string()); },
      "LLaMA-family");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(peft::gguf_module_name("model.layers.12.mlp.down_proj"), "blk.12.ffn_down");
  EXPECT_EQ(peft::gguf_module_name("model.layers.0.self_attn.rotary_emb"), "");
}

TEST(GgufWriter, RoundTripsMetadataAndTensorsThroughTheReader) {
  peft::io::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_uint32("x.count", 7);
  w.add_bool("x.flag", true);
  w.add_string_array("x.names", {"a", "bc"});
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(values.data()), reinterpret_cast<uint8_t*>(values.data()) + 24);
  w.add_tensor("t", {2, 3}, peft::io::GgmlType::F32, bytes);
  peft::test::expect_error([&] { w.add_uint32("x.count", 1); }, "given twice");
  peft::test::expect_error([&] { w.add_tensor("u", {2, 2}, peft::io::GgmlType::F32, bytes); }, "needs 16");
  const fs::path out = temp_file("roundtrip.gguf");
  w.write(out.string());
  const auto f = peft::io::GgufFile::open(out.string());
  EXPECT_EQ(f.get_uint("x.count"), 7u);
  EXPECT_TRUE(f.get_bool("x.flag"));
  EXPECT_EQ(f.get_string_array("x.names"), (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(f.tensor("t").shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(torch::equal(gguf_tensor(f, "t"), torch::tensor(values).reshape({2, 3})));
  fs::remove(out);
}

}  // namespace
