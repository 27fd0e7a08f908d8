// peft info MODEL: what a model folder holds, read from its config and checkpoint.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "peft/error.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/tokenize/tokenizer.h"

namespace fs = std::filesystem;

namespace peft::cli {
namespace {

struct InfoArgs {
  std::string model;
  bool json = false;
};

std::string human_bytes(uintmax_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 3) v /= 1024, ++u;
  return fmt::format(u == 0 ? "{:.0f} {}" : "{:.1f} {}", v, units[u]);
}

void run_info(const InfoArgs& args) {
  const fs::path dir = resolve_model_dir(args.model);
  const EncoderConfig config = load_encoder_config((dir / "config.json").string());
  EncoderModel encoder = load_encoder_model(dir.string());
  int64_t parameters = 0;
  for (auto& p : encoder->parameters()) parameters += p.numel();
  // A folder may hold only weights (e.g. a merged model): report the tokenizer as missing, not fail.
  std::string tokenizer_vocab;
  try {
    tokenizer_vocab = std::to_string(tok::load_tokenizer(dir.string())->vocab_size());
  } catch (const Error& e) {
    tokenizer_vocab = fmt::format("none ({})", e.what());
  }

  nlohmann::json files = nlohmann::json::array();
  for (auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file())
      files.push_back({{"name", entry.path().filename().string()}, {"bytes", entry.file_size()}});
  std::sort(files.begin(), files.end(), [](auto& a, auto& b) { return a["name"] < b["name"]; });

  nlohmann::json info = {
      {"path", dir.string()},
      {"model_type", config.model_type},
      {"architectures", config.architectures},
      {"layers", config.num_hidden_layers},
      {"hidden_size", config.hidden_size},
      {"attention_heads", config.num_attention_heads},
      {"intermediate_size", config.intermediate_size},
      {"activation", config.hidden_act_name},
      {"max_position_embeddings", config.max_position_embeddings},
      {"vocab_size", config.vocab_size},
      {"tokenizer_vocab_size", tokenizer_vocab},
      {"parameters", parameters},
      {"files", files},
  };
  if (args.json) {
    std::cout << info.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("model         {}\n", dir.string());
  std::cout << fmt::format("architecture  {} ({})\n", config.model_type,
                           config.architectures.empty() ? "-" : fmt::format("{}", fmt::join(config.architectures, ", ")));
  std::cout << fmt::format("layers        {}\n", config.num_hidden_layers);
  std::cout << fmt::format("hidden        {} ({} heads x {}), FFN {}, {}\n", config.hidden_size,
                           config.num_attention_heads, config.head_dim(), config.intermediate_size,
                           config.hidden_act_name);
  std::cout << fmt::format("positions     {}\n", config.max_position_embeddings);
  std::cout << fmt::format("vocab         {} (tokenizer: {})\n", config.vocab_size, tokenizer_vocab);
  std::cout << fmt::format("parameters    {} ({:.1f} M)\n", parameters, parameters / 1e6);
  std::cout << "files\n";
  for (auto& f : files)
    std::cout << fmt::format("  {:<36} {:>10}\n", f["name"].get<std::string>(), human_bytes(f["bytes"].get<uintmax_t>()));
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Show a model's architecture, size, vocabulary and files");
  cmd->add_option("model", args->model, "model folder or installed model name (e.g. all-MiniLM-L6-v2)")->required();
  cmd->add_flag("--json", args->json, "print as JSON");
  cmd->callback([args] { run_info(*args); });
}

}  // namespace peft::cli
