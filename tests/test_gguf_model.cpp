// GGUF decoders loaded as HF checkpoints: config, tensor names/shapes and values (Q/K permutation
// undone) equal to what transformers loads from the same file, for a tiny committed LLaMA and, when
// installed, SmolLM2-135M-Instruct (Q4_1). Fixtures: scripts/fixtures/make_gguf_fixtures.py.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/io/gguf_dequant.h"
#include "peft/models/gguf_model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path fixture(const std::string& name) { return peft::test::fixtures_dir() / "gguf" / name; }

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json read_json(const fs::path& path) { return json::parse(read_bytes(path)); }

// A float32 tensor from `count` floats at element `offset` of a .f32 fixture.
torch::Tensor f32_slice(const std::string& bytes, size_t offset, std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  EXPECT_LE((offset + count) * 4, bytes.size());
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  std::memcpy(t.data_ptr<float>(), bytes.data() + offset * 4, count * 4);
  return t;
}

// Bitwise equality (NaN-safe, distinguishes -0.0).
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

// The config keys the fixture recorded from transformers, except rope_scaling (see below).
void expect_config_matches_hf(const json& ours, const json& hf) {
  for (const auto& [key, value] : hf.items()) {
    if (key == "rope_scaling") continue;
    ASSERT_TRUE(ours.contains(key)) << key;
    if (value.is_number_float()) EXPECT_EQ(ours[key].get<double>(), value.get<double>()) << key;
    else EXPECT_EQ(ours[key], value) << key;
  }
  EXPECT_EQ(ours["architectures"], json::array({"LlamaForCausalLM"}));
}

// ---- name mapping --------------------------------------------------------------------------

TEST(GgufModel, HfNames) {
  EXPECT_EQ(peft::gguf_to_hf_name("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.0.attn_norm.weight"), "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.7.ffn_norm.weight"), "model.layers.7.post_attention_layernorm.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.1.attn_k.bias"), "model.layers.1.self_attn.k_proj.bias");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.1.attn_v.weight"), "model.layers.1.self_attn.v_proj.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.1.attn_output.weight"), "model.layers.1.self_attn.o_proj.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.2.ffn_gate.weight"), "model.layers.2.mlp.gate_proj.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.2.ffn_up.weight"), "model.layers.2.mlp.up_proj.weight");
  EXPECT_EQ(peft::gguf_to_hf_name("blk.2.ffn_down.weight"), "model.layers.2.mlp.down_proj.weight");
  for (const char* unmapped : {"rope_freqs.weight", "blk.x.attn_q.weight", "blk.1.attn_q", "blk.1.unknown.weight",
                               "blk..attn_q.weight", "blk.1.attn_q.scale"})
    EXPECT_EQ(peft::gguf_to_hf_name(unmapped), "") << unmapped;
}

// ---- the tiny committed LLaMA ------------------------------------------------------------------

TEST(GgufModel, TinyLlamaMatchesTransformers) {
  const json info = read_json(fixture("tiny_llama.json"));
  const std::string values = read_bytes(fixture("tiny_llama.f32"));
  const peft::GgufModel m = peft::load_gguf_model(fixture("tiny_llama.gguf").string(), torch::kFloat32);
  EXPECT_EQ(m.architecture, "llama");
  expect_config_matches_hf(m.config, info["hf_config"]);
  EXPECT_FALSE(m.config["tie_word_embeddings"].get<bool>());
  EXPECT_EQ(m.config["torch_dtype"], "float32");
  // transformers ignores llama.rope.scaling.*; we keep it.
  EXPECT_EQ(m.config["rope_scaling"], (json{{"rope_type", "linear"}, {"factor", 2.0}}));
  EXPECT_TRUE(m.unmapped.empty());

  std::set<std::string> expected_names;
  int64_t parameters = 0;
  for (const auto& [name, e] : info["tensors"].items()) {
    SCOPED_TRACE(name);
    expected_names.insert(name);
    const auto shape = e["shape"].get<std::vector<int64_t>>();
    const torch::Tensor& t = m.tensor(name);
    EXPECT_EQ(t.sizes().vec(), shape);
    EXPECT_EQ(t.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(same_bits(t, f32_slice(values, e["offset"].get<size_t>(), shape)));
    parameters += t.numel();
  }
  std::set<std::string> names;
  for (const auto& [name, _] : m.tensors) names.insert(name);
  EXPECT_EQ(names, expected_names);
  EXPECT_EQ(parameters, info["hf_parameter_count"].get<int64_t>());  // untied: lm_head counted

  // The permutation is real: HF's q rows are the GGUF rows reordered within each head.
  const auto f = peft::io::GgufFile::open(fixture("tiny_llama.gguf").string());
  const auto& q = f.tensor("blk.0.attn_q.weight");
  const std::vector<float> raw = peft::io::dequantize_tensor(f, q);
  const torch::Tensor raw_t = torch::from_blob(const_cast<float*>(raw.data()), {32, 32}, torch::kFloat32);
  const torch::Tensor& hf_q = m.tensor("model.layers.0.self_attn.q_proj.weight");
  EXPECT_FALSE(torch::equal(raw_t, hf_q));
  // Head 0 of 4 (8 rows): HF row 1 is GGUF row 2 (pairs interleaved), HF row 4 is GGUF row 1.
  EXPECT_TRUE(torch::equal(hf_q[1], raw_t[2]));
  EXPECT_TRUE(torch::equal(hf_q[4], raw_t[1]));
  EXPECT_TRUE(torch::equal(hf_q[8], raw_t[8]));

  const peft::GgufTokenizer& tok = m.tokenizer;
  EXPECT_EQ(tok.model, "llama");
  ASSERT_EQ(tok.tokens.size(), 16u);
  EXPECT_EQ(tok.tokens[5], "<t5>");
  EXPECT_EQ(tok.scores.size(), 16u);
  EXPECT_EQ(tok.scores[3], -3.0f);
  EXPECT_EQ(tok.token_types[0], 3);
  EXPECT_EQ(tok.token_types[15], 1);
  EXPECT_EQ(tok.bos_token_id, std::optional<int64_t>(1));
  EXPECT_EQ(tok.eos_token_id, std::optional<int64_t>(2));
  EXPECT_FALSE(tok.pad_token_id.has_value());
  EXPECT_EQ(tok.add_bos_token, std::optional<bool>(true));
  EXPECT_TRUE(tok.merges.empty());
}

TEST(GgufModel, HalfPrecisionDtypesRoundLikeTorch) {
  const fs::path path = fixture("tiny_llama.gguf");
  const peft::GgufModel full = peft::load_gguf_model(path.string(), torch::kFloat32);
  for (auto dtype : {torch::kBFloat16, torch::kFloat16, torch::kFloat64}) {
    const peft::GgufModel m = peft::load_gguf_model(path.string(), dtype);
    for (const auto& [name, t] : full.tensors) {
      SCOPED_TRACE(name);
      EXPECT_TRUE(same_bits(m.tensor(name), t.to(dtype))) << c10::toString(dtype);
    }
  }
}

TEST(GgufModel, Errors) {
  const std::string tiny = fixture("tiny_llama.gguf").string();
  auto expect_error = [](const std::function<void()>& f, std::initializer_list<std::string> parts) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const peft::Error& e) {
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  expect_error([&] { peft::load_gguf_model(tiny, torch::kInt32); }, {tiny, "float32"});
  const std::string metadata = fixture("metadata.gguf").string();  // architecture llama, no llama.* keys
  expect_error([&] { peft::load_gguf_model(metadata); }, {metadata, "'llama.embedding_length'", "missing"});
  const peft::GgufModel m = peft::load_gguf_model(tiny);
  expect_error([&] { m.tensor("model.nope"); }, {tiny, "'model.nope'"});

  // A missing layer tensor: drop blk.1.ffn_up.weight by renaming it in a copy of the file.
  std::string bytes = read_bytes(tiny);
  const std::string from = "blk.1.ffn_up.weight", to = "blk.1.ffn_xx.weight";
  const size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, from.size(), to);
  const fs::path broken = fs::temp_directory_path() / "peft_gguf_missing_tensor.gguf";
  {
    std::ofstream out(broken, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  expect_error([&] { peft::load_gguf_model(broken.string()); }, {broken.string(), "'blk.1.ffn_up.weight'", "missing"});
  fs::remove(broken);
}

// ---- the installed SmolLM2 -------------------------------------------------------------------


TEST(GgufModelSmolLM2, MatchesTransformers) {
  PEFT_REQUIRE_SMOLLM2(path);
  const json info = read_json(fixture("smollm2.json"));
  const std::string values = read_bytes(fixture("smollm2.f32"));
  const peft::GgufModel m = peft::load_gguf_model(path.string(), torch::kFloat32);

  expect_config_matches_hf(m.config, info["hf_config"]);
  EXPECT_EQ(m.config["rope_scaling"], nullptr);
  EXPECT_EQ(m.config["num_hidden_layers"], 30);
  EXPECT_EQ(m.config["hidden_size"], 576);
  EXPECT_EQ(m.config["num_attention_heads"], 9);
  EXPECT_EQ(m.config["num_key_value_heads"], 3);
  EXPECT_EQ(m.config["intermediate_size"], 1536);
  EXPECT_EQ(m.config["vocab_size"], 49152);
  EXPECT_EQ(m.config["head_dim"], 64);
  EXPECT_EQ(m.config["rope_theta"].get<double>(), 100000.0);
  EXPECT_EQ(m.config["max_position_embeddings"], 8192);
  EXPECT_TRUE(m.config["tie_word_embeddings"].get<bool>());

  // Same names and shapes as HF's state dict, whose tied lm_head.weight the file does not store.
  std::map<std::string, std::vector<int64_t>> ours, hf;
  int64_t parameters = 0;
  for (const auto& [name, t] : m.tensors) {
    ours[name] = t.sizes().vec();
    parameters += t.numel();
  }
  for (const auto& [name, shape] : info["hf_state_dict"].items())
    if (name != "lm_head.weight") hf[name] = shape.get<std::vector<int64_t>>();
  EXPECT_EQ(ours, hf);
  EXPECT_EQ(parameters, 134515008);
  EXPECT_EQ(parameters, info["hf_parameter_count"].get<int64_t>());

  // Rows of q_proj / k_proj across heads and pair halves, embeddings, norms: bit-exact with HF.
  for (const auto& [name, e] : info["hf_rows"].items()) {
    SCOPED_TRACE(name);
    const torch::Tensor& t = m.tensor(name);
    EXPECT_EQ(t.sizes().vec(), e["shape"].get<std::vector<int64_t>>());
    const int64_t row_size = e["row_size"].get<int64_t>();
    size_t offset = e["offset"].get<size_t>();
    for (int64_t r : e["rows"].get<std::vector<int64_t>>()) {
      const torch::Tensor ours_row = t.reshape({-1, row_size})[r];
      EXPECT_TRUE(same_bits(ours_row, f32_slice(values, offset, {row_size}))) << "row " << r;
      offset += row_size;
    }
  }

  const peft::GgufTokenizer& tok = m.tokenizer;
  EXPECT_EQ(tok.model, "gpt2");
  EXPECT_EQ(tok.pre, "smollm");
  ASSERT_EQ(tok.tokens.size(), 49152u);
  EXPECT_EQ(tok.tokens[0], "<|endoftext|>");
  EXPECT_EQ(tok.tokens[1], "<|im_start|>");
  EXPECT_EQ(tok.tokens[2], "<|im_end|>");
  EXPECT_EQ(tok.token_types.size(), 49152u);
  EXPECT_EQ(tok.token_types[0], 3);
  EXPECT_TRUE(tok.scores.empty());
  ASSERT_EQ(tok.merges.size(), 48900u);
  EXPECT_EQ(tok.merges[0], "\xc4\xa0 t");  // "Ġ t"
  EXPECT_EQ(tok.bos_token_id, std::optional<int64_t>(1));
  EXPECT_EQ(tok.eos_token_id, std::optional<int64_t>(2));
  EXPECT_EQ(tok.pad_token_id, std::optional<int64_t>(2));
  EXPECT_EQ(tok.unk_token_id, std::optional<int64_t>(0));
  EXPECT_EQ(tok.add_bos_token, std::optional<bool>(false));
  EXPECT_EQ(tok.add_space_prefix, std::optional<bool>(false));
  EXPECT_EQ(tok.chat_template.rfind("{% for message in messages %}", 0), 0u);
}

TEST(GgufModelSmolLM2, Bfloat16IsTorchsRoundingOfFloat32) {
  PEFT_REQUIRE_SMOLLM2(path);
  const json info = read_json(fixture("smollm2.json"));
  const std::string values = read_bytes(fixture("smollm2.f32"));
  const peft::GgufModel m = peft::load_gguf_model(path.string(), torch::kBFloat16);
  EXPECT_EQ(m.config["torch_dtype"], "bfloat16");
  for (const auto& [name, e] : info["hf_rows"].items()) {
    SCOPED_TRACE(name);
    const torch::Tensor& t = m.tensor(name);
    EXPECT_EQ(t.scalar_type(), torch::kBFloat16);
    const int64_t row_size = e["row_size"].get<int64_t>();
    size_t offset = e["offset"].get<size_t>();
    for (int64_t r : e["rows"].get<std::vector<int64_t>>()) {
      EXPECT_TRUE(same_bits(t.reshape({-1, row_size})[r], f32_slice(values, offset, {row_size}).to(torch::kBFloat16)))
          << "row " << r;
      offset += row_size;
    }
  }
}

}  // namespace
