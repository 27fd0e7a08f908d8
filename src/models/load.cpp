#include "peft/models/load.h"

#include <set>

#include <torch/nn/init.h>

#include "peft/error.h"
#include "peft/models/checkpoint.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

std::string shape_str(torch::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Tensors a checkpoint may hold that are not parameters of ours (buffers HF keeps in its files).
bool is_ignorable_buffer(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with("embeddings.position_ids") || ends_with("embeddings.token_type_ids");
}

// Copies every parameter of `model` from the checkpoint. `candidates` lists, for one of our names, the
// names it may have in the file (with or without the "bert."/"roberta." prefix). Parameters accepted by
// `may_be_new` are initialised instead when the checkpoint lacks them (task heads, the pooler).
void copy_parameters(torch::nn::Module& model, const Checkpoint& ckpt,
                     const std::function<std::vector<std::string>(const std::string&)>& candidates,
                     const std::function<bool(const std::string&)>& may_be_new, LoadReport* report) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& ours = item.key();
    std::string found;
    for (auto& name : candidates(ours))
      if (ckpt.contains(name)) {
        found = name;
        break;
      }
    if (found.empty()) {
      if (may_be_new(ours)) {
        if (report) report->initialised.push_back(ours);
        continue;
      }
      fail("{}: missing tensor {} (model config expects it)", ckpt.files().front(), ours);
    }
    torch::Tensor source = ckpt.get(found);
    torch::Tensor& target = item.value();
    if (source.sizes() != target.sizes())
      fail("{}: tensor {} has shape {} but config.json implies {}", ckpt.file_of(found), found,
           shape_str(source.sizes()), shape_str(target.sizes()));
    if (!source.is_floating_point())
      fail("{}: tensor {} has integer dtype; expected floating point weights", ckpt.file_of(found), found);
    target.copy_(source);
    used.insert(found);
  }
  if (report)
    for (auto& name : ckpt.names())
      if (!used.count(name) && !is_ignorable_buffer(name)) report->unused.push_back(name);
}

LoadOptions checked(const LoadOptions& options) {
  if (options.num_labels && *options.num_labels < 1) fail("num_labels must be >= 1, got {}", *options.num_labels);
  return options;
}

}  // namespace

void init_encoder_weights(torch::nn::Module& module, const EncoderConfig& config) {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters(true)) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    if (name.find("LayerNorm") != std::string::npos)
      name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 ? p.fill_(1.0) : p.zero_();
    else if (p.dim() >= 2)
      p.normal_(0.0, config.initializer_range);
    else
      p.zero_();
  }
  // HF zeroes the padding row of the word embeddings.
  for (auto& item : module.named_parameters(true))
    if (item.key().find("word_embeddings.weight") != std::string::npos) item.value()[config.pad_token_id].zero_();
}

EncoderConfig load_config_for(const std::string& model, const LoadOptions& options) {
  const fs::path dir = resolve_model_dir(model);
  EncoderConfig config = load_encoder_config((dir / "config.json").string());
  if (options.num_labels && *options.num_labels != config.num_labels) {
    config.num_labels = *options.num_labels;
    config.id2label.clear();
  }
  if (options.problem_type) config.problem_type = *options.problem_type;
  config.validate((dir / "config.json").string());
  return config;
}

SequenceClassifier load_sequence_classifier(const std::string& model, const LoadOptions& raw_options,
                                            LoadReport* report) {
  const LoadOptions options = checked(raw_options);
  const fs::path dir = resolve_model_dir(model);
  const EncoderConfig config = load_config_for(model, options);
  Checkpoint ckpt = Checkpoint::open_dir(dir);
  if (report) report->model_dir = dir.string();

  SequenceClassifier classifier(config);
  init_encoder_weights(*classifier, config);
  const std::string prefix = classifier->base_prefix() + ".";
  // A head whose size differs from the requested num_labels is re-initialised, as HF does with
  // ignore_mismatched_sizes; we only allow that for the head.
  const std::string head_out = config.family == EncoderFamily::Bert ? "classifier.weight" : "classifier.out_proj.weight";
  const bool keep_head = !options.num_labels || !ckpt.contains(head_out) ||
                         ckpt.get(head_out).size(0) == config.num_labels;
  auto candidates = [&](const std::string& ours) -> std::vector<std::string> {
    if (starts_with(ours, prefix)) return {ours, ours.substr(prefix.size())};
    if (!keep_head) return {};  // re-initialised head: nothing to copy
    return {ours};
  };
  auto may_be_new = [&](const std::string& ours) {
    return starts_with(ours, "classifier.") || starts_with(ours, prefix + "pooler.");
  };
  copy_parameters(*classifier, ckpt, candidates, may_be_new, report);
  classifier->to(options.device, options.dtype);
  classifier->eval();
  return classifier;
}

EncoderModel load_encoder_model(const std::string& model, const LoadOptions& options, LoadReport* report) {
  const fs::path dir = resolve_model_dir(model);
  const EncoderConfig config = load_config_for(model, checked(options));
  Checkpoint ckpt = Checkpoint::open_dir(dir);
  if (report) report->model_dir = dir.string();

  EncoderModel encoder(config, /*with_pooler=*/config.family == EncoderFamily::Bert);
  init_encoder_weights(*encoder, config);
  const std::string prefix = config.family == EncoderFamily::Bert ? "bert." : "roberta.";
  auto candidates = [&](const std::string& ours) -> std::vector<std::string> { return {ours, prefix + ours}; };
  auto may_be_new = [&](const std::string& ours) { return starts_with(ours, "pooler."); };
  copy_parameters(*encoder, ckpt, candidates, may_be_new, report);
  encoder->to(options.device, options.dtype);
  encoder->eval();
  return encoder;
}

}  // namespace peft
