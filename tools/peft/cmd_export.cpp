// peft export RUN --gguf FILE: a trained LoRA task as a llama.cpp LoRA adapter (GGUF) for its base model.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "peft/error.h"
#include "peft/methods/gguf_lora.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"

namespace fs = std::filesystem;

namespace peft::cli {
namespace {

struct ExportArgs {
  std::string task_dir, gguf, model;
};

void run_export(const ExportArgs& a) {
  fs::path dir = a.task_dir;
  if (!fs::exists(dir / "adapter_config.json") && fs::exists(dir / "task" / "adapter_config.json")) dir /= "task";
  if (!fs::exists(dir / "adapter_config.json"))
    fail("{}: no adapter_config.json (expected a task or run folder written by `peft train`, or a PEFT folder)",
         a.task_dir);
  std::string base = a.model;
  if (base.empty()) {
    std::ifstream in(dir / "task.json");
    nlohmann::json task;
    if (in) task = nlohmann::json::parse(in, nullptr, false);
    if (task.is_object()) base = task.value("base_model", "");
    if (base.empty()) {
      std::ifstream c(dir / "adapter_config.json");
      const nlohmann::json config = nlohmann::json::parse(c, nullptr, false);
      if (config.is_object() && config.contains("base_model_name_or_path") && config["base_model_name_or_path"].is_string())
        base = config["base_model_name_or_path"].get<std::string>();
    }
    if (base.empty()) fail("{}: which base model? (no task.json base_model; pass --model)", dir.string());
  }
  if (!is_decoder_model(base)) fail("--model {}: not a decoder; GGUF LoRA export is for LLaMA-family models", base);
  const nlohmann::json config = load_causal_lm(base)->hf_config();
  export_gguf_lora(dir.string(), config, a.gguf);
  std::cout << "wrote " << a.gguf << " (llama.cpp: --lora " << a.gguf << " with the base " << base << ")\n";
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Export a trained LoRA task as a llama.cpp GGUF LoRA adapter");
  cmd->add_option("task", a->task_dir, "task or run folder (or a PEFT LoRA folder)")->required();
  cmd->add_option("--gguf", a->gguf, "output .gguf file")->required();
  cmd->add_option("--model", a->model, "base model (default: the task's)");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace peft::cli
