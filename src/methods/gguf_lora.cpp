#include "peft/methods/gguf_lora.h"

#include <cmath>
#include <fstream>
#include <map>
#include <regex>

#include <torch/torch.h>

#include "peft/error.h"
#include "peft/io/gguf_writer.h"
#include "peft/io/safetensors.h"
#include "peft/methods/method.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

std::vector<uint8_t> f32_bytes(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto* p = reinterpret_cast<const uint8_t*>(c.data_ptr<float>());
  return {p, p + c.numel() * 4};
}

// llama.cpp's converter stores Q/K rows interleaved per head (its RoPE pairs neighbours; HF pairs halves).
torch::Tensor permute_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0);
  return w.reshape({heads, 2, rows / heads / 2, w.size(1)}).transpose(1, 2).reshape({rows, w.size(1)});
}

}  // namespace

std::string gguf_module_name(const std::string& hf) {
  static const std::regex layer(R"(model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+))");
  static const std::map<std::string, std::string> modules = {
      {"q_proj", "attn_q"},      {"k_proj", "attn_k"}, {"v_proj", "attn_v"},   {"o_proj", "attn_output"},
      {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"}};
  if (hf == "lm_head") return "output";
  std::smatch m;
  if (!std::regex_match(hf, m, layer)) return "";
  const auto it = modules.find(m[3].str());
  return it == modules.end() ? "" : "blk." + m[1].str() + "." + it->second;
}

void export_gguf_lora(const std::string& adapter_dir, const nlohmann::json& base, const std::string& out_path) {
  const fs::path dir(adapter_dir);
  std::ifstream config_file(dir / "adapter_config.json");
  if (!config_file) fail("{}: no adapter_config.json", adapter_dir);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(config_file);
  } catch (const nlohmann::json::exception& e) {
    fail("{}/adapter_config.json: invalid JSON ({})", adapter_dir, e.what());
  }
  if (config.value("peft_type", "") != "LORA")
    fail("{}: peft_type {} is not LORA (llama.cpp loads LoRA adapters only)", adapter_dir, config.value("peft_type", "?"));
  if (base.value("model_type", "") != "llama")
    fail("{}: the base model is '{}', GGUF LoRA export supports LLaMA-family bases", adapter_dir,
         base.value("model_type", "?"));
  const int64_t r = config.at("r");
  double alpha = config.value("lora_alpha", double(r));
  if (config.value("use_rslora", false)) alpha *= std::sqrt(double(r));  // llama.cpp scales by alpha / r
  const int64_t heads = base.at("num_attention_heads"), kv_heads = base.value("num_key_value_heads", heads);

  auto file = io::SafetensorsFile::open((dir / "adapter_model.safetensors").string());
  static const std::regex key(R"(base_model\.model\.(.+)\.lora_([AB])\.weight)");
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> modules;  // HF module -> (A, B)
  for (const auto& name : file.names()) {
    std::smatch m;
    if (!std::regex_match(name, m, key))
      fail("{}: tensor '{}' is not a LoRA A/B weight (bias, embedding or saved module: llama.cpp cannot load it)",
           adapter_dir, name);
    auto& ab = modules[m[1].str()];
    (m[2] == "A" ? ab.first : ab.second) = file.tensor(name).clone();
  }
  if (modules.empty()) fail("{}: the adapter has no LoRA tensors", adapter_dir);

  io::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.type", "adapter");
  w.add_string("general.name", fs::path(adapter_dir).filename().string());
  w.add_string("adapter.type", "lora");
  w.add_float32("adapter.lora.alpha", float(alpha));
  for (const auto& [module, ab] : modules) {
    const std::string target = gguf_module_name(module);
    if (target.empty()) fail("{}: LoRA target '{}' has no llama.cpp tensor", adapter_dir, module);
    const auto& [a, b] = ab;
    if (!a.defined() || !b.defined()) fail("{}: '{}' lacks its lora_{} weight", adapter_dir, module, a.defined() ? "B" : "A");
    if (a.dim() != 2 || b.dim() != 2 || a.size(0) != r || b.size(1) != r)
      fail("{}: '{}' has lora_A {} and lora_B {}, not rank {}", adapter_dir, module, a.sizes(), b.sizes(), r);
    torch::Tensor b_rows = b;
    if (target.size() > 7 && target.compare(target.size() - 7, 7, ".attn_q") == 0) b_rows = permute_rows(b, heads);
    if (target.size() > 7 && target.compare(target.size() - 7, 7, ".attn_k") == 0) b_rows = permute_rows(b, kv_heads);
    w.add_tensor(target + ".weight.lora_a", {a.size(0), a.size(1)}, io::GgmlType::F32, f32_bytes(a));
    w.add_tensor(target + ".weight.lora_b", {b.size(0), b.size(1)}, io::GgmlType::F32, f32_bytes(b_rows));
  }
  w.write(out_path);
}

}  // namespace peft
