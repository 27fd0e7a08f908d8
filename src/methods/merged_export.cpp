#include "peft/methods/merged_export.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/io/safetensors.h"
#include "peft/methods/model_params.h"

namespace fs = std::filesystem;

namespace peft {

void save_merged_model(AdaptedModel& model, const std::string& base_model_dir, const std::string& out_dir) {
  const fs::path src(base_model_dir), out(out_dir);
  if (fs::exists(out) && fs::equivalent(src, out)) fail("merge: --out must differ from the base model folder");
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) fail("{}: cannot create folder: {}", out_dir, ec.message());

  model.merge();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  try {
    for (auto& [name, p] : base_named_parameters(*model.model())) tensors.emplace_back(name, p.detach().to(torch::kCPU).clone());
  } catch (...) {
    model.unmerge();
    throw;
  }
  model.unmerge();
  io::save_safetensors((out / "model.safetensors").string(), tensors, {{"format", "pt"}});

  // config.json: the base model's, with the head size of the merged model.
  std::ifstream in(src / "config.json");
  if (!in) fail("{}: cannot open config.json", base_model_dir);
  nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
  if (config.is_discarded()) fail("{}/config.json: invalid JSON", base_model_dir);
  const int64_t labels = model.head().num_outputs;
  const bool classifier = model.head().kind != HeadKind::CausalLM;
  if (classifier && (!config.contains("id2label") || int64_t(config["id2label"].size()) != labels)) {  // head resized at load
    config["id2label"] = nlohmann::json::object();
    config["label2id"] = nlohmann::json::object();
    for (int64_t i = 0; i < labels; ++i) {
      config["id2label"][std::to_string(i)] = fmt::format("LABEL_{}", i);
      config["label2id"][fmt::format("LABEL_{}", i)] = i;
    }
  }
  io::write_file_atomically((out / "config.json").string(), config.dump(2) + "\n");
  for (const char* name : {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "vocab.json", "merges.txt"})
    if (fs::exists(src / name)) fs::copy_file(src / name, out / name, fs::copy_options::overwrite_existing);
}

}  // namespace peft
