// peft merge --model M --adapter DIR --out DIR: folds an adapter (LoRA, IA3, BitFit, ...) into the
// base weights and writes a plain HF model folder (model.safetensors + config.json + tokenizer files).
#include <iostream>

#include "commands.h"
#include "peft/error.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/merged_export.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"

namespace peft::cli {
namespace {

struct MergeArgs {
  std::string model, adapter, out;
};

void run_merge(const MergeArgs& args) {
  const std::string dir = resolve_model_dir(args.model).string();
  LoadOptions options;
  options.num_labels = adapter_num_labels(args.adapter);  // the adapter's head replaces the base head
  AdaptedModel model(load_sequence_classifier(dir, options));
  load_adapter(model, args.adapter);
  save_merged_model(model, dir, args.out);
  std::cerr << "peft: wrote merged model to " << args.out << "\n";
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto args = std::make_shared<MergeArgs>();
  auto* cmd = app.add_subcommand("merge", "Merge an adapter into its base model and write an HF model folder");
  cmd->add_option("--model", args->model, "Base model folder or installed model name")->required();
  cmd->add_option("--adapter", args->adapter, "Adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required();
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->callback([args] { run_merge(*args); });
}

}  // namespace peft::cli
