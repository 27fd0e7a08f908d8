// peft info MODEL: what a model (HF folder, GGUF file or installed name) holds: architecture, size, files.
#include <filesystem>
#include <map>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "peft/error.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/io/gguf.h"
#include "peft/models/decoder.h"
#include "peft/models/model_tokenizer.h"

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

// The files of a model: every file of a folder, or the GGUF file itself.
nlohmann::json model_files(const fs::path& source) {
  nlohmann::json files = nlohmann::json::array();
  if (fs::is_regular_file(source)) {
    files.push_back({{"name", source.filename().string()}, {"bytes", fs::file_size(source)}});
    return files;
  }
  for (auto& entry : fs::directory_iterator(source))
    if (entry.is_regular_file())
      files.push_back({{"name", entry.path().filename().string()}, {"bytes", entry.file_size()}});
  std::sort(files.begin(), files.end(), [](auto& a, auto& b) { return a["name"] < b["name"]; });
  return files;
}

// GGUF tensor types and how many tensors of each ("Q4_1": 211, "F32": 61).
nlohmann::json gguf_tensor_types(const fs::path& file) {
  std::map<std::string, int64_t> counts;
  for (const auto& t : io::GgufFile::open(file.string()).tensors()) ++counts[std::string(io::ggml_type_name(t.type))];
  return counts;
}

void run_info(const InfoArgs& args) {
  const fs::path source = resolve_model_source(args.model);
  const bool decoder = is_decoder_model(source.string());
  ModelArch arch;
  std::string activation;
  std::vector<std::string> architectures;
  int64_t parameters = 0;  // tied embeddings count once, as in HF's num_parameters()
  if (decoder) {
    auto lm = load_causal_lm(source.string());
    arch = lm->arch();
    const nlohmann::json config = lm->hf_config();
    activation = config.value("hidden_act", config.value("activation_function", ""));
    architectures = config.value("architectures", std::vector<std::string>{});
    for (auto& p : lm->parameters()) parameters += p.numel();
  } else {
    const EncoderConfig config = load_encoder_config((source / "config.json").string());
    arch = encoder_arch(config);
    activation = config.hidden_act_name;
    architectures = config.architectures;
    for (auto& p : load_encoder_model(source.string())->parameters()) parameters += p.numel();
  }
  // A folder may hold only weights (e.g. a merged model): report the tokenizer as missing, not fail.
  std::string tokenizer_vocab;
  try {
    tokenizer_vocab = std::to_string(load_model_tokenizer(source.string()).tokenizer->vocab_size());
  } catch (const Error& e) {
    tokenizer_vocab = fmt::format("none ({})", e.what());
  }
  const nlohmann::json files = model_files(source);
  nlohmann::json info = {
      {"path", source.string()},
      {"model_type", arch.model_type},
      {"architectures", architectures},
      {"causal_lm", arch.causal},
      {"layers", arch.num_layers},
      {"hidden_size", arch.hidden_size},
      {"attention_heads", arch.num_heads},
      {"key_value_heads", arch.num_kv_heads},
      {"head_dim", arch.head_dim},
      {"intermediate_size", arch.intermediate_size},
      {"activation", activation},
      {"max_position_embeddings", arch.max_positions},
      {"vocab_size", arch.vocab_size},
      {"tokenizer_vocab_size", tokenizer_vocab},
      {"parameters", parameters},
      {"files", files},
  };
  if (fs::is_regular_file(source)) info["gguf_tensor_types"] = gguf_tensor_types(source);
  if (args.json) {
    std::cout << info.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("model         {}\n", source.string());
  std::cout << fmt::format("architecture  {} ({}){}\n", arch.model_type,
                           architectures.empty() ? "-" : fmt::format("{}", fmt::join(architectures, ", ")),
                           arch.causal ? ", causal LM" : "");
  std::cout << fmt::format("layers        {}\n", arch.num_layers);
  const std::string kv = arch.num_kv_heads != arch.num_heads ? fmt::format(", {} KV heads", arch.num_kv_heads) : "";
  std::cout << fmt::format("hidden        {} ({} heads x {}{}), FFN {}, {}\n", arch.hidden_size, arch.num_heads,
                           arch.head_dim, kv, arch.intermediate_size, activation);
  std::cout << fmt::format("positions     {}\n", arch.max_positions);
  std::cout << fmt::format("vocab         {} (tokenizer: {})\n", arch.vocab_size, tokenizer_vocab);
  std::cout << fmt::format("parameters    {} ({:.1f} M)\n", parameters, parameters / 1e6);
  if (info.contains("gguf_tensor_types")) {
    std::vector<std::string> types;
    for (auto& [name, count] : info["gguf_tensor_types"].items()) types.push_back(fmt::format("{} x{}", name, count.get<int64_t>()));
    std::cout << fmt::format("tensor types  {}\n", fmt::join(types, ", "));
  }
  std::cout << "files\n";
  for (auto& f : files)
    std::cout << fmt::format("  {:<36} {:>10}\n", f["name"].get<std::string>(), human_bytes(f["bytes"].get<uintmax_t>()));
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Show a model's architecture, size, vocabulary and files");
  cmd->add_option("model", args->model, "model folder, .gguf file or installed model name (e.g. all-MiniLM-L6-v2, SmolLM2-135M-Instruct)")->required();
  cmd->add_flag("--json", args->json, "print as JSON");
  cmd->callback([args] { run_info(*args); });
}

}  // namespace peft::cli
