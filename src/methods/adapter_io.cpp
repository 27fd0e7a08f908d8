#include "peft/methods/adapter_io.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_bin.h"
#include "peft/methods/model_params.h"
#include "peft/methods/registry.h"

namespace fs = std::filesystem;

namespace peft {
namespace {

using nlohmann::json;

constexpr const char* kMulti = "MULTI_METHOD";

// One method's adapter_config.json entries. For PEFT's types only keys PEFT's config classes know.
// PEFT's prompt-learning config describes the model; with grouped-query attention PEFT counts the
// key/value heads (token_dim = num_key_value_heads * head_dim).
std::vector<std::pair<const char*, int64_t>> prompt_layout(const ModelArch& a) {
  return {{"num_layers", a.num_layers}, {"token_dim", a.num_kv_heads * a.head_dim}, {"num_attention_heads", a.num_kv_heads}};
}

json method_entry(Method& m, const ModelArch& arch) {
  json j = m.config();
  j["peft_type"] = method_type(m.type()).peft_type;
  if (m.type() == "prefix") {
    for (auto& [key, value] : prompt_layout(arch)) j[key] = value;
    j["num_transformer_submodules"] = 1;
    if (j["encoder_hidden_size"].get<int64_t>() == 0) j["encoder_hidden_size"] = arch.hidden_size;
  }
  return j;
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path.string());
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a JSON object", path.string());
  return j;
}

// All tensors of the adapter file, by key.
std::map<std::string, torch::Tensor> read_tensors(const fs::path& dir) {
  std::map<std::string, torch::Tensor> out;
  if (fs::exists(dir / "adapter_model.safetensors")) {
    auto file = io::SafetensorsFile::open((dir / "adapter_model.safetensors").string());
    for (auto& name : file.names()) out[name] = file.tensor(name);
  } else if (fs::exists(dir / "adapter_model.bin")) {
    for (auto& [name, t] : io::load_torch_bin((dir / "adapter_model.bin").string())) out[name] = t;
  } else {
    fail("{}: no adapter_model.safetensors or adapter_model.bin", dir.string());
  }
  return out;
}

}  // namespace

json adapter_config(AdaptedModel& model, const std::string& base_model_name_or_path) {
  if (model.methods().empty()) fail("save_adapter: no method attached");
  const ModelArch& arch = model.model()->arch();
  json j;
  if (model.methods().size() == 1) {
    j = method_entry(*model.methods().front(), arch);
  } else {
    j["peft_type"] = kMulti;
    j["methods"] = json::array();
    for (auto& m : model.methods()) j["methods"].push_back(method_entry(*m, arch));
  }
  j["task_type"] = model.head().peft_task_type();
  j["base_model_name_or_path"] = base_model_name_or_path.empty() ? json(nullptr) : json(base_model_name_or_path);
  j["inference_mode"] = true;
  const std::string head = model.model()->head_module_name();
  j["modules_to_save"] = model.trains_head() && !head.empty() ? json::array({head}) : json(nullptr);
  j["revision"] = nullptr;
  return j;
}

void save_adapter(AdaptedModel& model, const std::string& dir, const std::string& base_model_name_or_path) {
  const json config = adapter_config(model, base_model_name_or_path);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::set<std::string> keys;
  auto add = [&](const std::vector<MethodTensor>& ts) {
    for (auto& t : ts)
      if (keys.insert(t.key).second) tensors.emplace_back(t.key, t.tensor.detach());
  };
  for (auto& m : model.methods()) {
    // Saved weights are the unmerged ones.
    if (m->merged()) fail("save_adapter: unmerge the model before saving (method {} is merged)", m->type());
    add(m->saved_tensors());
  }
  add(model.head_tensors());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create folder: {}", dir, ec.message());
  io::save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors);
  io::write_file_atomically((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

namespace {

// The methods an adapter folder describes (not attached yet). Checks the task type and, for prefix
// tuning, that the prefix table's layout fits the model.
std::vector<std::shared_ptr<Method>> methods_of(const json& config, const Model& model, const std::string& where) {
  if (!config.contains("peft_type") || !config["peft_type"].is_string()) fail("{}: no peft_type", where);
  const std::string task_type = model.head().peft_task_type();
  if (config.contains("task_type") && !config["task_type"].is_null() && config["task_type"] != task_type)
    fail("{}: task_type {} does not fit this model (expected {})", where, config["task_type"].dump(), task_type);
  std::vector<json> entries;
  if (config["peft_type"] == kMulti) {
    if (!config.contains("methods") || !config["methods"].is_array()) fail("{}: MULTI_METHOD without \"methods\"", where);
    for (auto& m : config["methods"]) entries.push_back(m);
  } else {
    entries.push_back(config);
  }
  std::vector<std::shared_ptr<Method>> out;
  try {
    for (auto& e : entries) {
      if (!e.contains("peft_type") || !e["peft_type"].is_string()) fail("method entry without peft_type");
      const MethodType& type = method_type_for_peft_type(e["peft_type"].get<std::string>());
      if (type.name == "prefix") {  // the prefix table's layout must fit this model
        for (auto& [key, want] : prompt_layout(model.arch()))
          if (e.contains(key) && e[key].is_number() && e[key].get<int64_t>() != want)
            fail("prefix: {} is {} but the model has {} (adapter made for another base model?)", key,
                 e[key].get<int64_t>(), want);
      }
      out.push_back(type.make(e));
    }
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
  return out;
}

// An adapter file's tensors with a record of which ones were asked for.
struct TensorLookup {
  std::string dir;
  std::map<std::string, torch::Tensor> tensors;
  std::set<std::string> used;

  torch::Tensor operator()(const std::string& key) {
    auto it = tensors.find(key);
    if (it == tensors.end()) fail("{}: adapter file has no tensor {} (adapter made for another base model?)", dir, key);
    used.insert(key);
    return it->second;
  }
  // The head's tensors are in the file under `prefix` + their parameter names.
  bool has_head(const Model& model, const std::string& prefix) const {
    for (auto& [key, t] : tensors)
      for (auto& head : model.head_parameter_prefixes())
        if (key.rfind(prefix + head, 0) == 0) return true;
    return false;
  }
  // PEFT's bias="all" files also hold copies of the head under modules_to_save names; they are redundant.
  void check_all_used() const {
    std::vector<std::string> unused;
    for (auto& [key, t] : tensors)
      if (!used.count(key) && key.find(".modules_to_save.") == std::string::npos &&
          key.find(".original_module.") == std::string::npos)
        unused.push_back(key);
    if (!unused.empty())
      fail("{}: {} adapter tensor(s) match nothing in the model, e.g. {} (adapter made for another base model?)", dir,
           unused.size(), unused.front());
  }
};

}  // namespace

void load_adapter(AdaptedModel& model, const std::string& dir) {
  if (!model.methods().empty()) fail("load_adapter: the model already has methods attached");
  const fs::path folder(dir);
  const std::string where = (folder / "adapter_config.json").string();
  const auto methods = methods_of(read_json(folder / "adapter_config.json"), *model.model(), where);
  try {
    for (auto& m : methods) model.add(m);
  } catch (const Error& e) {
    model.remove_all();
    fail("{}: {}", where, e.what());
  }
  TensorLookup lookup{dir, read_tensors(folder), {}};
  try {
    for (auto& m : model.methods()) m->load_tensors(std::ref(lookup));
    // Adapters that carry the head replace the base head with it (PEFT does so even when
    // modules_to_save is null).
    const std::string head_prefix = model.methods().front()->head_key_prefix();
    if (lookup.has_head(*model.model(), head_prefix))
      for (auto& [name, p] : base_named_parameters(*model.model()))
        if (is_head_parameter(*model.model(), name)) copy_checked(p, lookup(head_prefix + name), head_prefix + name);
    lookup.check_all_used();
  } catch (const Error&) {
    model.remove_all();
    throw;
  }
  model.refreeze();
}

NamedAdapter load_named_adapter(Model& model, const std::string& dir, const std::string& name) {
  const fs::path folder(dir);
  const std::string where = (folder / "adapter_config.json").string();
  NamedAdapter out;
  out.methods = methods_of(read_json(folder / "adapter_config.json"), model, where);
  std::vector<std::shared_ptr<Method>> attached;
  auto detach_all = [&] {
    for (auto it = attached.rbegin(); it != attached.rend(); ++it) (*it)->detach(model);
  };
  try {
    for (auto& m : out.methods) {
      m->set_adapter_name(name);
      m->attach(model);
      attached.push_back(m);
    }
  } catch (const Error& e) {
    detach_all();
    fail("{}: {}", where, e.what());
  }
  // A method that trains the base model's own tensors (BitFit, full fine-tuning, LoRA with bias)
  // would change them for every task.
  std::set<const void*> base;
  for (auto& [param, p] : base_named_parameters(model))
    if (!is_head_parameter(model, param)) base.insert(p.data_ptr());
  for (auto& m : out.methods)
    for (auto& t : m->tensors())
      if (base.count(t.tensor.data_ptr())) {
        detach_all();
        fail("{}: {} trains the base model's own tensors ({}), so it cannot share the base with other tasks (serve "
             "a merged model instead)", dir, m->type(), t.key);
      }
  TensorLookup lookup{dir, read_tensors(folder), {}};
  try {
    for (auto& m : out.methods) m->load_tensors(std::ref(lookup));
    const std::string head_prefix = out.methods.front()->head_key_prefix();
    if (lookup.has_head(model, head_prefix))
      for (auto& [param, p] : base_named_parameters(model)) {
        if (!is_head_parameter(model, param)) continue;
        const std::string key = head_prefix + param;
        torch::Tensor t = lookup(key);
        // The task's own label count may differ from the shared model's head: only the input side must fit.
        if (t.dim() != p.dim() || (p.dim() == 2 && t.size(1) != p.size(1)))
          fail("{}: {} has shape {} but the model expects {} (adapter made for another base model?)", dir, key,
               fmt::format("({})", fmt::join(t.sizes(), ", ")), fmt::format("({})", fmt::join(p.sizes(), ", ")));
        // A copy, not a view of the mapped file (which would keep the whole file resident per task).
        out.head.emplace_back(param, t.to(p.device(), p.scalar_type()).clone());
      }
    lookup.check_all_used();
  } catch (const Error&) {
    detach_all();
    throw;
  }
  return out;
}

std::optional<int64_t> adapter_num_labels(const std::string& dir) {
  for (auto& [key, t] : read_tensors(fs::path(dir)))
    for (const char* head : {"classifier.weight", "classifier.out_proj.weight"})
      for (const char* prefix : {"base_model.model.", "base_model."})
        if (key == std::string(prefix) + head && t.dim() == 2) return t.size(0);
  return std::nullopt;
}

}  // namespace peft
