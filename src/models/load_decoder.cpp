// Building decoders from an HF folder (config.json + safetensors / .bin) or a llama.cpp GGUF file.
#include <fstream>
#include <set>

#include "peft/error.h"
#include "peft/models/checkpoint.h"
#include "peft/models/decoder.h"
#include "peft/models/gguf_model.h"
#include "peft/models/load.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

std::string decoder_shape(torch::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Checkpoint tensors that are buffers, not parameters (GPT-2's causal mask, rotary caches).
bool is_decoder_buffer(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with("rotary_emb.inv_freq");
}

// Copies every parameter from `lookup` (which returns an undefined tensor when a name is absent).
void fill_decoder(CausalLM& model, const std::function<torch::Tensor(const std::string&)>& lookup,
                  const std::function<std::string(const std::string&)>& where, std::set<std::string>& used) {
  torch::NoGradGuard no_grad;
  const bool gpt2 = model.config().family == DecoderFamily::Gpt2;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& ours = item.key();
    std::vector<std::string> names = {ours};
    // Original GPT-2 files name the transformer's tensors without the "transformer." prefix.
    if (gpt2 && ours.rfind("transformer.", 0) == 0) names.push_back(ours.substr(12));
    torch::Tensor source;
    std::string found;
    for (auto& n : names)
      if ((source = lookup(n)).defined()) {
        found = n;
        break;
      }
    if (!source.defined()) fail("{}: missing tensor {} (model config expects it)", where(""), ours);
    if (source.sizes() != item.value().sizes())
      fail("{}: tensor {} has shape {} but the config implies {}", where(found), found, decoder_shape(source.sizes()),
           decoder_shape(item.value().sizes()));
    if (!source.is_floating_point()) fail("{}: tensor {} is not floating point", where(found), found);
    item.value().copy_(source);
    used.insert(found);
  }
}

}  // namespace

bool is_decoder_model(const std::string& model) {
  const fs::path source = resolve_model_source(model);
  if (source.extension() == ".gguf") return true;
  std::ifstream in(source / "config.json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return !j.is_discarded() && is_decoder_config(j);
}

std::shared_ptr<CausalLM> load_causal_lm(const std::string& model, const LoadOptions& options, LoadReport* report) {
  const fs::path source = resolve_model_source(model);
  std::set<std::string> used;
  std::shared_ptr<CausalLM> lm;
  if (source.extension() == ".gguf") {
    // Dequantized once, straight into the requested dtype; the model then owns the only copy.
    GgufModel gguf = load_gguf_model(source.string(), options.dtype);
    lm = make_causal_lm(parse_decoder_config(gguf.config, source.string()));
    auto lookup = [&](const std::string& name) {
      auto it = gguf.tensors.find(name);
      return it == gguf.tensors.end() ? torch::Tensor() : it->second;
    };
    fill_decoder(*lm, lookup, [&](const std::string&) { return source.string(); }, used);
    if (report) {
      report->model_dir = source.string();
      report->unused = gguf.unmapped;
    }
  } else {
    const fs::path config_path = source / "config.json";
    std::ifstream in(config_path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail("{}: invalid JSON", config_path.string());
    lm = make_causal_lm(parse_decoder_config(j, config_path.string()));
    const Checkpoint ckpt = Checkpoint::open_dir(source);
    auto lookup = [&](const std::string& name) { return ckpt.contains(name) ? ckpt.get(name) : torch::Tensor(); };
    auto where = [&](const std::string& name) { return name.empty() ? ckpt.files().front() : ckpt.file_of(name); };
    fill_decoder(*lm, lookup, where, used);
    if (report) {
      report->model_dir = source.string();
      for (auto& name : ckpt.names())
        if (!used.count(name) && !is_decoder_buffer(name) && name != "lm_head.weight") report->unused.push_back(name);
    }
  }
  lm->to(options.device, options.dtype);
  lm->eval();
  return lm;
}

}  // namespace peft
