#pragma once
// Task folders for the multi-task and server tests: tiny-bert with a vocabulary, adapter tasks of any
// method spec (tensors moved off their initial values), diff-pruned tasks, and what a task gives
// alone through the single-task path (load_task, as `peft predict` runs it).
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "peft/data/batching.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/registry.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"
#include "peft/methods/sparse_diff.h"
#include "peft/methods/spec.h"
#include "peft/serve/multi_task.h"
#include "peft/train/adapted.h"
#include "test_methods_util.h"

namespace peft::test {

namespace fs = std::filesystem;

inline const std::vector<std::string> kWords = {
    "the", "a", "movie", "film", "was", "is", "great", "bad", "good", "boring", "fun", "plot", "acting", "and", "but",
    "not", "very", "it", "i", "liked", "hated", "story", "actors", "music", "long", "short", "funny", "sad", "best",
    "worst", "ever", "seen", "of", "to", "in", "this", "that", "with", "for", "on", "at", "by", "an", "be", "are",
    "were", "so", "too", "really", "quite", "well", "made", "end", "scene", "scenes", "time", "way", "much", "more"};

// tiny-bert with a WordPiece vocabulary of its 99 ids, so that tasks take text.
inline fs::path tiny_bert_with_vocab() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / fmt::format("peft_multi_task_{}_model", ::getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(peft::test::tiny_model("tiny-bert") / f, d / f);
    std::ofstream vocab(d / "vocab.txt");
    std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (char c = 'a'; c <= 'z'; ++c) tokens.push_back(std::string(1, c));
    for (auto& w : kWords) tokens.push_back(w);
    while (tokens.size() < 99) tokens.push_back(fmt::format("[unused{}]", tokens.size()));
    for (auto& t : tokens) vocab << t << "\n";
    return d;
  }();
  return dir;
}

inline fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("peft_multi_task_{}_{}", ::getpid(), name);
  fs::remove_all(dir);
  return dir;
}

inline std::vector<std::string> labels_of(int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(fmt::format("label{}", i));
  return out;
}

inline void write_task_json(const fs::path& dir, int64_t num_labels, const std::string& base) {
  peft::data::TaskInfo info;
  info.name = "custom";
  info.labels = labels_of(num_labels);
  info.metrics = {"accuracy"};
  nlohmann::json j = info.to_json();
  j["base_model"] = base;
  j["max_seq_length"] = 16;
  peft::io::write_file_atomically((dir / "task.json").string(), j.dump(2) + "\n");
}

// A trained-looking task: the method's tensors and the head moved off their initial values.
inline fs::path make_adapter_task(const std::string& name, const std::string& spec, int64_t num_labels, uint64_t seed) {
  const fs::path model = tiny_bert_with_vocab();
  peft::LoadOptions load;
  load.num_labels = num_labels;
  peft::AdaptedModel m(peft::load_sequence_classifier(model.string(), load));
  m.model()->eval();
  m.add(peft::make_methods(peft::parse_method_spec(spec)));
  peft::test::perturb(m, seed);
  const fs::path dir = temp_dir(name);
  peft::save_adapter(m, dir.string(), model.string());
  write_task_json(dir, num_labels, model.string());
  return dir;
}

// A diff-pruned task: a few hundred random entries of several base tensors, and its own head.
inline fs::path make_diff_task(const std::string& name, int64_t num_labels, uint64_t seed) {
  const fs::path model = tiny_bert_with_vocab();
  peft::SequenceClassifier base = peft::load_sequence_classifier(model.string());
  peft::SparseDiff diff;
  torch::manual_seed(seed);
  for (auto& item : base->named_parameters()) {
    const std::string& param = item.key();
    const torch::Tensor& p = item.value();
    if (param.rfind("classifier.", 0) == 0) continue;
    if (param.find("embeddings.word") == std::string::npos && param.find("query.weight") == std::string::npos &&
        param.find("LayerNorm.bias") == std::string::npos && param.find("output.dense.bias") == std::string::npos)
      continue;
    peft::TensorDiff t;
    t.name = param;
    t.shape = p.sizes().vec();
    const int64_t nnz = std::max<int64_t>(1, p.numel() / 20);
    t.indices = std::get<0>(torch::randperm(p.numel(), torch::kLong).narrow(0, 0, nnz).sort());
    t.values = torch::randn({nnz}) * 0.2;
    diff.tensors.push_back(t);
  }
  diff.base_checksum = peft::model_checksum(*base, diff);
  diff.head = {{"classifier.weight", torch::randn({num_labels, 32}) * 0.3},
               {"classifier.bias", torch::randn({num_labels}) * 0.1}};
  const fs::path dir = temp_dir(name);
  fs::create_directories(dir);
  peft::write_sparse_diff((dir / peft::kDiffFileName).string(), diff);
  write_task_json(dir, num_labels, model.string());
  return dir;
}

struct TaskCase {
  std::string name, spec;
  int64_t num_labels;
};

// Every method a task can be served with (bitfit and full change the base itself: see the error test).
inline std::vector<TaskCase> adapter_cases() {
  return {{"lora", "lora:r=4,lora_dropout=0", 2},
          {"rslora", R"s(lora:r=3,use_rslora=true,target_modules=".*(key|dense)",lora_dropout=0)s", 3},
          {"ia3", "ia3", 2},
          {"houlsby", "houlsby:r=4,init=lora", 4},
          {"pfeiffer", "pfeiffer:r=4,activation=tanh,init=lora", 2},
          {"parallel", "parallel:r=4,activation=gelu", 3},
          {"scaled_parallel", "scaled_parallel:r=4,placement=attention,activation=identity", 2},
          {"gated", "bottleneck:r=4,composition=gated,insertion=parallel", 2},
          {"prefix", "prefix:num_virtual_tokens=3,prefix_projection=false", 2},
          {"prefix_mlp", "prefix:num_virtual_tokens=5,encoder_hidden_size=8", 3},
          {"mam", "mam:num_virtual_tokens=4,encoder_hidden_size=8,r=4", 2},
          {"lora_ia3", "lora:r=2,lora_dropout=0+ia3", 2},
          {"adamix", "adamix:num_experts=3,r=4", 2},
          {"adamix_lora", "adamix_lora:num_experts=2,r=2,lora_dropout=0", 3},
          {"classifier_only", "classifier_only", 2}};
}

inline const std::vector<peft::serve::TextInput> kInputs = {
    {"the movie was great", std::nullopt},
    {"i hated the plot and the acting was bad", std::nullopt},
    {"fun", std::nullopt},
    {"a very long film", std::string("but the music was the best ever")},
    {"worst scene", std::string("it was not funny")},
};

// What `peft predict` computes for one task: load_task, the task's forward, softmax.
inline std::vector<std::vector<double>> alone(const fs::path& dir, const std::vector<peft::serve::TextInput>& inputs) {
  auto t = peft::train::load_task(dir.string());
  peft::data::Dataset d;
  d.labels = t.task.labels;
  for (auto& in : inputs) d.examples.push_back({in.text, in.pair, std::nullopt, 0});
  const auto tokens = peft::data::tokenize(d, *t.tokenizer, t.max_seq_length);
  std::vector<size_t> all(tokens.size());
  std::iota(all.begin(), all.end(), 0);
  torch::NoGradGuard no_grad;
  const torch::Tensor probs = t.trainable.forward(peft::data::collate(tokens, all).input).softmax(1).to(torch::kDouble);
  std::vector<std::vector<double>> out;
  for (int64_t r = 0; r < probs.size(0); ++r) {
    const torch::Tensor row = probs[r].contiguous();
    out.emplace_back(row.data_ptr<double>(), row.data_ptr<double>() + row.size(0));
  }
  return out;
}

// Decoders: tiny-llama or tiny-gpt2 with eight adapters of several methods attached under their names
// (tensors moved off their initial values, seeded), in eval mode: LoRA of two ranks (two of rank 4,
// batched in one gathered product), IA3, prefixes of 3 and 6 tokens, a Pfeiffer adapter, AdaMix-LoRA.
inline const std::vector<std::string> kDecoderTasks = {"lora",     "lora_b",   "lora_c",     "ia3",
                                                       "prefix",   "prefix2",  "pfeiffer",   "adamix_lora"};
inline std::shared_ptr<CausalLM> decoder_with_tasks(const std::string& model_name) {
  const std::vector<std::string> specs = {"lora:r=4,lora_dropout=0",
                                          "lora:r=4,lora_dropout=0",
                                          "lora:r=2,lora_dropout=0",
                                          "ia3",
                                          "prefix:num_virtual_tokens=3,prefix_projection=false",
                                          "prefix:num_virtual_tokens=6,prefix_projection=false",
                                          "pfeiffer:r=4,init=lora",
                                          "adamix_lora:num_experts=2,r=2,lora_dropout=0"};
  auto lm = load_causal_lm((fixtures_dir() / "decoder" / model_name).string());
  lm->eval();
  torch::manual_seed(3);
  for (size_t i = 0; i < specs.size(); ++i)
    for (auto& m : make_methods(parse_method_spec(specs[i]))) {
      m->set_adapter_name(kDecoderTasks[i]);
      m->attach(*lm);
      torch::NoGradGuard no_grad;
      for (auto& t : m->tensors()) t.tensor.add_(torch::randn_like(t.tensor) * 0.3);
      m->finalize();
    }
  lm->eval();
  return lm;
}

}  // namespace peft::test
