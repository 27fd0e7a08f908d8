// GGUF decoder -> HF checkpoint. Config keys and tensor processing follow transformers'
// integrations/ggml.py (GGUF_CONFIG_MAPPING["llama"]) and modeling_gguf_pytorch_utils.py
// (LlamaTensorProcessor: reverse_permute_weights on attn_q / attn_k).
#include "peft/models/gguf_model.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include <fmt/ranges.h>

#include "peft/error.h"
#include "peft/io/gguf_dequant.h"

namespace peft {
namespace gguf_model_impl {
namespace {

using io::GgufFile;
using io::GgufTensorInfo;
using nlohmann::json;

// blk.N.<gguf> -> model.layers.N.<hf>
constexpr std::pair<const char*, const char*> kLayerModules[] = {
    {"attn_norm", "input_layernorm"},   {"ffn_norm", "post_attention_layernorm"},
    {"attn_q", "self_attn.q_proj"},     {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},     {"attn_output", "self_attn.o_proj"},
    {"ffn_gate", "mlp.gate_proj"},      {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

struct LayerTensor {
  int64_t layer = -1;
  std::string module;  // GGUF module ("attn_q")
  std::string param;   // "weight" / "bias"
};

// "blk.12.attn_q.weight" -> {12, "attn_q", "weight"}; nullopt for other names.
std::optional<LayerTensor> parse_layer_name(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return std::nullopt;
  size_t pos = 4, end = pos;
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
  if (end == pos || end - pos > 9 || end >= name.size() || name[end] != '.') return std::nullopt;
  LayerTensor t;
  t.layer = std::stoll(name.substr(pos, end - pos));
  const size_t dot = name.rfind('.');
  if (dot <= end) return std::nullopt;
  t.module = name.substr(end + 1, dot - end - 1);
  t.param = name.substr(dot + 1);
  if (t.param != "weight" && t.param != "bias") return std::nullopt;
  return t;
}

const char* hf_module(const std::string& gguf_module) {
  for (const auto& [g, h] : kLayerModules)
    if (gguf_module == g) return h;
  return nullptr;
}

int64_t positive_int(const GgufFile& f, const std::string& key) {
  const int64_t v = f.get_int(key);
  if (v <= 0) fail("{}: metadata key '{}' is {}, expected a positive integer", f.path(), key, v);
  return v;
}

std::optional<int64_t> optional_int(const GgufFile& f, const std::string& key) {
  if (!f.has(key)) return std::nullopt;
  return f.get_int(key);
}

json optional_json(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

// What HF's LlamaForCausalLM holds under `hf_name`, from the config.
std::vector<int64_t> expected_shape(const std::string& hf_name, const json& c) {
  const int64_t hidden = c["hidden_size"], ffn = c["intermediate_size"], vocab = c["vocab_size"];
  const int64_t q_rows = c["num_attention_heads"].get<int64_t>() * c["head_dim"].get<int64_t>();
  const int64_t kv_rows = c["num_key_value_heads"].get<int64_t>() * c["head_dim"].get<int64_t>();
  auto ends = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return hf_name.size() >= n && hf_name.compare(hf_name.size() - n, n, suffix) == 0;
  };
  const bool bias = ends(".bias");
  if (hf_name == "model.embed_tokens.weight" || hf_name == "lm_head.weight") return {vocab, hidden};
  if (ends("layernorm.weight") || hf_name == "model.norm.weight") return {hidden};
  if (ends("q_proj.weight") || ends("q_proj.bias")) return bias ? std::vector<int64_t>{q_rows} : std::vector<int64_t>{q_rows, hidden};
  if (ends("k_proj.weight") || ends("v_proj.weight") || ends("k_proj.bias") || ends("v_proj.bias"))
    return bias ? std::vector<int64_t>{kv_rows} : std::vector<int64_t>{kv_rows, hidden};
  if (ends("o_proj.weight") || ends("o_proj.bias")) return bias ? std::vector<int64_t>{hidden} : std::vector<int64_t>{hidden, q_rows};
  if (ends("gate_proj.weight") || ends("up_proj.weight") || ends("gate_proj.bias") || ends("up_proj.bias"))
    return bias ? std::vector<int64_t>{ffn} : std::vector<int64_t>{ffn, hidden};
  if (ends("down_proj.weight") || ends("down_proj.bias")) return bias ? std::vector<int64_t>{hidden} : std::vector<int64_t>{hidden, ffn};
  return {};
}

std::string dtype_label(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return "float32";
    case torch::kDouble: return "float64";
    case torch::kHalf: return "float16";
    case torch::kBFloat16: return "bfloat16";
    default: return "";
  }
}

// Stores `n` floats at `dst` (element `offset` of a tensor of `dtype`).
void store(const float* src, size_t n, torch::ScalarType dtype, void* dst, size_t offset) {
  switch (dtype) {
    case torch::kFloat: std::memcpy(static_cast<float*>(dst) + offset, src, n * sizeof(float)); break;
    case torch::kDouble: std::copy(src, src + n, static_cast<double*>(dst) + offset); break;
    case torch::kHalf: io::floats_to_f16(src, static_cast<uint16_t*>(dst) + offset, n); break;
    case torch::kBFloat16: io::floats_to_bf16(src, static_cast<uint16_t*>(dst) + offset, n); break;
    default: break;  // rejected by load_gguf_model
  }
}

// Elements per work item: large enough to amortise scheduling, small enough for the cache.
constexpr uint64_t kChunkElements = 1 << 16;

// Dequantizes `t` into a new tensor of `dtype` and its PyTorch shape. With `permute_heads` > 0 the
// rows (dim 0) are reordered as transformers' reverse_permute_weights does for that head count:
// llama.cpp stores each head's rows as interleaved (first half, second half) pairs for its RoPE.
torch::Tensor load_tensor(const GgufFile& f, const GgufTensorInfo& t, torch::ScalarType dtype, int64_t permute_heads) {
  if (!io::can_dequantize(t.type))
    fail("{}: tensor '{}': cannot dequantize type {}", f.path(), t.name, io::ggml_type_name(t.type));
  const std::vector<int64_t> shape = t.shape();
  torch::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  if (t.n_elements == 0) return out;
  void* dst = out.data_ptr();
  const auto& traits = io::ggml_type_traits(t.type);
  const uint8_t* src = f.tensor_data(t).data;

  if (permute_heads <= 0) {
    // Flat: any run of whole blocks dequantizes on its own.
    const uint64_t chunk = std::max<uint64_t>(kChunkElements / traits.block_size, 1) * traits.block_size;
    const int64_t n_chunks = static_cast<int64_t>((t.n_elements + chunk - 1) / chunk);
    at::parallel_for(0, n_chunks, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> buffer(dtype == torch::kFloat ? 0 : chunk);
      for (int64_t c = begin; c < end; ++c) {
        const uint64_t first = c * chunk, n = std::min<uint64_t>(chunk, t.n_elements - first);
        const uint8_t* blocks = src + first / traits.block_size * traits.type_size;
        if (dtype == torch::kFloat) {
          io::dequantize_row(t.type, blocks, static_cast<float*>(dst) + first, n);
        } else {
          io::dequantize_row(t.type, blocks, buffer.data(), n);
          store(buffer.data(), n, dtype, dst, first);
        }
      }
    });
    return out;
  }

  const int64_t rows = shape[0];
  if (rows % (2 * permute_heads) != 0)
    fail("{}: tensor '{}': {} rows do not split into {} heads of row pairs", f.path(), t.name, rows, permute_heads);
  const int64_t half = rows / permute_heads / 2;
  auto source_row = [half](int64_t r) {  // HF row (head, a, d) <- GGUF row (head, d, a)
    const int64_t head = r / (2 * half), a = (r % (2 * half)) / half, d = r % half;
    return head * 2 * half + 2 * d + a;
  };
  if (shape.size() == 1) {  // a bias: its rows are single elements (small, so dequantized whole)
    const std::vector<float> all = io::dequantize_tensor(f, t);
    std::vector<float> permuted(all.size());
    for (int64_t r = 0; r < rows; ++r) permuted[r] = all[source_row(r)];
    store(permuted.data(), permuted.size(), dtype, dst, 0);
    return out;
  }
  if (shape.size() != 2) fail("{}: tensor '{}': expected 2 dimensions for the head permutation", f.path(), t.name);
  const uint64_t row_size = t.row_size();
  const int64_t grain = static_cast<int64_t>(std::max<uint64_t>(1, kChunkElements / row_size));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(row_size);
    for (int64_t r = begin; r < end; ++r) {
      io::dequantize_rows(f, t, static_cast<uint64_t>(source_row(r)), 1, buffer.data());
      store(buffer.data(), row_size, dtype, dst, static_cast<size_t>(r) * row_size);
    }
  });
  return out;
}

}  // namespace
}  // namespace gguf_model_impl

std::string gguf_to_hf_name(const std::string& name) {
  if (name == "token_embd.weight") return "model.embed_tokens.weight";
  if (name == "output_norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  const auto layer = gguf_model_impl::parse_layer_name(name);
  if (!layer) return "";
  const char* module = gguf_model_impl::hf_module(layer->module);
  if (module == nullptr) return "";
  return "model.layers." + std::to_string(layer->layer) + "." + module + "." + layer->param;
}

nlohmann::json gguf_hf_config(const io::GgufFile& f) {
  using gguf_model_impl::positive_int;
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama") fail("{}: GGUF architecture '{}' is not supported (supported: llama)", f.path(), arch);
  auto key = [&](const char* k) { return arch + "." + k; };

  const int64_t hidden = positive_int(f, key("embedding_length"));
  const int64_t heads = positive_int(f, key("attention.head_count"));
  const int64_t kv_heads = f.has(key("attention.head_count_kv")) ? positive_int(f, key("attention.head_count_kv")) : heads;
  if (heads % kv_heads != 0)
    fail("{}: {} attention heads do not divide into {} key/value heads", f.path(), heads, kv_heads);
  // HF takes head_dim from rope.dimension_count (equal to it for llama); else hidden / heads.
  int64_t head_dim = 0;
  if (f.has(key("rope.dimension_count"))) {
    head_dim = positive_int(f, key("rope.dimension_count"));
  } else {
    if (hidden % heads != 0)
      fail("{}: hidden size {} does not divide into {} heads (and '{}' is absent)", f.path(), hidden, heads,
           key("rope.dimension_count"));
    head_dim = hidden / heads;
  }
  int64_t vocab = 0;
  if (f.has(key("vocab_size"))) vocab = positive_int(f, key("vocab_size"));
  else if (f.has("tokenizer.ggml.tokens")) vocab = static_cast<int64_t>(f.get_array("tokenizer.ggml.tokens").count);
  else vocab = f.tensor("token_embd.weight").shape().front();

  nlohmann::json rope_scaling = nullptr;
  if (f.has(key("rope.scaling.type"))) {
    const std::string type = f.get_string(key("rope.scaling.type"));
    if (type != "none") {
      rope_scaling = {{"rope_type", type}, {"factor", f.get_float(key("rope.scaling.factor"))}};
      if (f.has(key("rope.scaling.original_context_length")))
        rope_scaling["original_max_position_embeddings"] = f.get_int(key("rope.scaling.original_context_length"));
    }
  }

  nlohmann::json c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_size"] = hidden;
  c["intermediate_size"] = positive_int(f, key("feed_forward_length"));
  c["num_hidden_layers"] = positive_int(f, key("block_count"));
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] = kv_heads;
  c["head_dim"] = head_dim;
  c["hidden_act"] = "silu";
  c["max_position_embeddings"] = positive_int(f, key("context_length"));
  c["rms_norm_eps"] = f.get_float(key("attention.layer_norm_rms_epsilon"));
  c["rope_theta"] = f.has(key("rope.freq_base")) ? f.get_float(key("rope.freq_base")) : 10000.0;  // LlamaConfig's default
  c["rope_scaling"] = rope_scaling;
  c["vocab_size"] = vocab;
  c["tie_word_embeddings"] = !f.has_tensor("output.weight");
  c["attention_bias"] = f.has_tensor("blk.0.attn_q.bias");
  c["mlp_bias"] = f.has_tensor("blk.0.ffn_up.bias");
  c["attention_dropout"] = 0.0;
  c["initializer_range"] = 0.02;
  c["pretraining_tp"] = 1;
  c["use_cache"] = true;
  using gguf_model_impl::optional_int;
  using gguf_model_impl::optional_json;
  c["bos_token_id"] = optional_json(optional_int(f, "tokenizer.ggml.bos_token_id"));
  c["eos_token_id"] = optional_json(optional_int(f, "tokenizer.ggml.eos_token_id"));
  c["pad_token_id"] = optional_json(optional_int(f, "tokenizer.ggml.padding_token_id"));
  c["unk_token_id"] = optional_json(optional_int(f, "tokenizer.ggml.unknown_token_id"));
  return c;
}

GgufTokenizer gguf_tokenizer(const io::GgufFile& f) {
  GgufTokenizer t;
  auto text = [&](const char* key, std::string& out) {
    if (f.has(key)) out = f.get_string(key);
  };
  auto flag = [&](const char* key, std::optional<bool>& out) {
    if (f.has(key)) out = f.get_bool(key);
  };
  text("tokenizer.ggml.model", t.model);
  text("tokenizer.ggml.pre", t.pre);
  text("tokenizer.chat_template", t.chat_template);
  if (f.has("tokenizer.ggml.tokens")) t.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.has("tokenizer.ggml.merges")) t.merges = f.get_string_array("tokenizer.ggml.merges");
  if (f.has("tokenizer.ggml.token_type")) {
    for (int64_t v : f.get_int_array("tokenizer.ggml.token_type")) {
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        fail("{}: metadata key 'tokenizer.ggml.token_type': value {} out of range", f.path(), v);
      t.token_types.push_back(static_cast<int32_t>(v));
    }
  }
  if (f.has("tokenizer.ggml.scores"))
    for (double v : f.get_float_array("tokenizer.ggml.scores")) t.scores.push_back(static_cast<float>(v));
  for (const auto& [key, size] : {std::pair<const char*, size_t>{"tokenizer.ggml.token_type", t.token_types.size()},
                                  {"tokenizer.ggml.scores", t.scores.size()}})
    if (size != 0 && size != t.tokens.size())
      fail("{}: metadata key '{}' has {} entries for {} tokens", f.path(), key, size, t.tokens.size());

  auto id = [&](const char* key, std::optional<int64_t>& out) {
    if (!f.has(key)) return;
    out = f.get_int(key);
    if (*out < 0 || (!t.tokens.empty() && *out >= static_cast<int64_t>(t.tokens.size())))
      fail("{}: metadata key '{}': token id {} is outside the {}-token vocabulary", f.path(), key, *out,
           t.tokens.size());
  };
  id("tokenizer.ggml.bos_token_id", t.bos_token_id);
  id("tokenizer.ggml.eos_token_id", t.eos_token_id);
  id("tokenizer.ggml.padding_token_id", t.pad_token_id);
  id("tokenizer.ggml.unknown_token_id", t.unk_token_id);
  flag("tokenizer.ggml.add_bos_token", t.add_bos_token);
  flag("tokenizer.ggml.add_eos_token", t.add_eos_token);
  flag("tokenizer.ggml.add_space_prefix", t.add_space_prefix);
  return t;
}

const torch::Tensor& GgufModel::tensor(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail("{}: tensor '{}' not in the model", path, name);
  return it->second;
}

GgufModel load_gguf_model(const std::string& path, torch::ScalarType dtype) {
  const std::string label = gguf_model_impl::dtype_label(dtype);
  if (label.empty())
    fail("{}: cannot load GGUF tensors as {} (float32, float64, float16 or bfloat16)", path, c10::toString(dtype));
  const io::GgufFile f = io::GgufFile::open(path);
  GgufModel m;
  m.path = path;
  m.architecture = f.get_string("general.architecture");
  m.config = gguf_hf_config(f);
  m.config["torch_dtype"] = label;
  m.tokenizer = gguf_tokenizer(f);

  const int64_t layers = m.config["num_hidden_layers"];
  // Every tensor of LlamaForCausalLM must be there (lm_head only when not tied): checked before any
  // dequantizing.
  std::vector<std::string> required = {"token_embd.weight", "output_norm.weight"};
  if (!m.config["tie_word_embeddings"].get<bool>()) required.push_back("output.weight");
  for (int64_t l = 0; l < layers; ++l)
    for (const auto& [module, _] : gguf_model_impl::kLayerModules)
      required.push_back("blk." + std::to_string(l) + "." + module + ".weight");
  for (const auto& name : required)
    if (!f.has_tensor(name)) fail("{}: tensor '{}' missing (needed for {})", path, name, gguf_to_hf_name(name));
  const int64_t heads = m.config["num_attention_heads"], kv_heads = m.config["num_key_value_heads"];
  struct Job {
    const io::GgufTensorInfo* info;
    std::string hf_name;
    int64_t permute_heads;
  };
  std::vector<Job> jobs;  // all names and shapes are validated before anything is dequantized
  for (const auto& t : f.tensors()) {
    const std::string hf = gguf_to_hf_name(t.name);
    if (hf.empty()) {
      m.unmapped.push_back(t.name);
      continue;
    }
    const auto layer = gguf_model_impl::parse_layer_name(t.name);
    if (layer && layer->layer >= layers)
      fail("{}: tensor '{}' is beyond the {} layers of '{}.block_count'", path, t.name, layers, m.architecture);
    const auto want = gguf_model_impl::expected_shape(hf, m.config);
    if (t.shape() != want)
      fail("{}: tensor '{}' has shape [{}], the config implies [{}] for {}", path, t.name, fmt::join(t.shape(), ", "),
           fmt::join(want, ", "), hf);
    if (!io::can_dequantize(t.type))
      fail("{}: tensor '{}': cannot dequantize type {}", path, t.name, io::ggml_type_name(t.type));
    const int64_t permute = !layer ? 0 : layer->module == "attn_q" ? heads : layer->module == "attn_k" ? kv_heads : 0;
    jobs.push_back({&t, hf, permute});
  }
  for (const auto& job : jobs)
    m.tensors.emplace(job.hf_name, gguf_model_impl::load_tensor(f, *job.info, dtype, job.permute_heads));
  return m;
}

}  // namespace peft
