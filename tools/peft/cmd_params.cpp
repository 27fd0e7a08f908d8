// peft params --model M --method SPEC: trainable parameters of a method on a model, % of the base
// model and a per-site breakdown (text, or JSON with --json).
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "peft/error.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/param_count.h"
#include "peft/methods/spec.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"

namespace peft::cli {
namespace {

struct ParamsArgs {
  std::string model, method, method_config;
  int64_t num_labels = 0;
  bool json = false;
};

std::string grouped(int64_t n) {  // 1234567 -> 1,234,567
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::vector<MethodSpecItem> method_items(const ParamsArgs& args) {
  if (!args.method_config.empty()) {
    std::ifstream in(args.method_config);
    if (!in) fail("--method-config {}: cannot open", args.method_config);
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) fail("--method-config {}: invalid JSON", args.method_config);
    if (args.method.empty()) return method_items_from_json(j);
    // A plain object of keys overrides the (single) method of --method.
    auto items = parse_method_spec(args.method);
    if (items.size() != 1) fail("--method-config with a multi-method --method: use {{\"methods\": [...]}} instead");
    if (!j.is_object()) fail("--method-config {}: expected a JSON object", args.method_config);
    for (auto& [k, v] : j.items()) items[0].config[k] = v;
    return items;
  }
  if (args.method.empty()) fail("--method or --method-config is required");
  return parse_method_spec(args.method);
}

void run_params(const ParamsArgs& args) {
  auto items = method_items(args);
  LoadOptions options;
  if (args.num_labels > 0) options.num_labels = args.num_labels;
  AdaptedModel model(load_sequence_classifier(resolve_model_dir(args.model).string(), options));
  model.add(make_methods(items));
  ParamReport report = count_parameters(model);
  if (args.json) {
    nlohmann::json j = report.to_json();
    j["methods"] = nlohmann::json::array();
    for (auto& m : model.methods()) j["methods"].push_back({{"type", m->type()}, {"config", m->config()}});
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (auto& m : model.methods()) std::cout << "method      " << m->type() << " " << m->config().dump() << "\n";
  std::cout << "base        " << grouped(report.base) << " parameters\n";
  std::cout << "trainable   " << grouped(report.trainable) << fmt::format(" ({:.4f}% of base)\n", report.percent_of_base());
  std::cout << "added       " << grouped(report.added) << " (new parameters the methods bring)\n";
  std::cout << "inference   " << grouped(report.inference) << " (kept for inference: trainable, AdaMix experts averaged)\n";
  size_t width = 4;
  for (auto& s : report.sites) width = std::max(width, s.site.size());
  std::cout << fmt::format("\n{:<{}}  {:>12}\n", "site", width, "trainable");
  for (auto& s : report.sites) std::cout << fmt::format("{:<{}}  {:>12}\n", s.site, width, grouped(s.params));
}

}  // namespace

void add_params_command(CLI::App& app) {
  auto args = std::make_shared<ParamsArgs>();
  auto* cmd = app.add_subcommand("params", "Trainable parameters of a method on a model, with a per-site breakdown");
  cmd->add_option("--model", args->model, "Model folder or installed model name")->required();
  cmd->add_option("--method", args->method,
                  "Method spec, e.g. lora:r=8  mam  prefix:num_virtual_tokens=10+bitfit (see docs/methods.md)");
  cmd->add_option("--method-config", args->method_config,
                  "JSON file: config keys for --method, or {\"methods\": [{\"type\": ..., ...}]}");
  cmd->add_option("--num-labels", args->num_labels, "Classifier head size (default: the model's config)");
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([args] { run_params(*args); });
}

}  // namespace peft::cli
