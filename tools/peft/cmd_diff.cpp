// peft diff info|apply|revert: sparse task files of diff pruning (peft/methods/sparse_diff.h).
//   info FILE                               what the file holds, its size against a dense save
//   apply --model M --diff FILE --out DIR   base + diff as an HF model folder, plus DIR/diff_undo.peftdiff
//   revert --model DIR --out DIR2           DIR's undo record applied: the base tensors, bit-exactly
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "peft/error.h"
#include "peft/methods/adapted_model.h"
#include "peft/methods/merged_export.h"
#include "peft/methods/sparse_diff.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"

namespace fs = std::filesystem;

namespace peft::cli {
namespace {

const char* kUndoName = "diff_undo.peftdiff";

struct DiffArgs {
  std::string file, model, diff, out, undo;
  bool json = false;
};

// A diff file, or a task / run folder holding one.
std::string diff_path(const std::string& given) {
  const fs::path p(given);
  for (const fs::path& candidate : {p, p / kDiffFileName, p / "task" / kDiffFileName})
    if (fs::is_regular_file(candidate)) return candidate.string();
  fail("{}: no diff file (expected a .peftdiff file or a folder holding {})", given, kDiffFileName);
}

nlohmann::json summary(const SparseDiff& d, const std::string& path) {
  const int64_t size = file_size(path);
  return {{"file", path}, {"kind", d.set ? "set (undo record)" : "add"}, {"base_model", d.base_model},
          {"base_checksum", fmt::format("{:016x}", d.base_checksum)}, {"value_dtype", c10::toString(d.value_dtype)},
          {"tensors", d.tensors.size()}, {"nnz", d.nnz()}, {"numel", d.numel()},
          {"density", d.numel() ? double(d.nnz()) / double(d.numel()) : 0.0}, {"head_tensors", d.head.size()},
          {"file_bytes", size}, {"dense_bytes", d.dense_bytes()},
          {"percent_of_dense", 100.0 * double(size) / double(d.dense_bytes())}};
}

void print_summary(const nlohmann::json& s) {
  std::cout << fmt::format("{}: {} diff, {} non-zeros in {} tensors ({:.4f}% of {} entries), {} values\n",
                           s["file"].get<std::string>(), s["kind"].get<std::string>(), s["nnz"].get<int64_t>(),
                           s["tensors"].get<size_t>(), 100 * s["density"].get<double>(), s["numel"].get<int64_t>(),
                           s["value_dtype"].get<std::string>());
  std::cout << fmt::format("base {} (checksum {}), head tensors {}\n", s["base_model"].get<std::string>(),
                           s["base_checksum"].get<std::string>(), s["head_tensors"].get<size_t>());
  std::cout << fmt::format("size {} bytes = {:.3f}% of a dense F32 save ({} bytes)\n", s["file_bytes"].get<int64_t>(),
                           s["percent_of_dense"].get<double>(), s["dense_bytes"].get<int64_t>());
}

std::optional<int64_t> head_labels(const SparseDiff& d) {
  for (const auto& [name, t] : d.head)
    if ((name == "classifier.weight" || name == "classifier.out_proj.weight") && t.dim() == 2) return t.size(0);
  return std::nullopt;
}

void run_info(const DiffArgs& a) {
  const std::string path = diff_path(a.file);
  const auto s = summary(read_sparse_diff(path), path);
  if (a.json) std::cout << s.dump(2) << "\n";
  else print_summary(s);
}

void run_apply(const DiffArgs& a) {
  const std::string path = diff_path(a.diff), dir = resolve_model_dir(a.model).string();
  const SparseDiff diff = read_sparse_diff(path);
  if (diff.set) fail("{}: an undo record; use `peft diff revert`", path);
  LoadOptions options;
  options.num_labels = head_labels(diff);
  AdaptedModel model(load_sequence_classifier(dir, options));
  SparseDiff undo = apply_diff(*model.model(), diff);  // checks everything before changing the model
  undo.base_checksum = model_checksum(*model.model(), undo);
  save_merged_model(model, dir, a.out);
  write_sparse_diff((fs::path(a.out) / kUndoName).string(), undo);
  print_summary(summary(diff, path));
  std::cout << "applied to " << dir << "; wrote " << a.out << " (revert with `peft diff revert --model " << a.out
            << "`)\n";
}

void run_revert(const DiffArgs& a) {
  const std::string dir = resolve_model_dir(a.model).string();
  const std::string undo_path = a.undo.empty() ? (fs::path(dir) / kUndoName).string() : a.undo;
  const SparseDiff undo = read_sparse_diff(undo_path);
  if (!undo.set) fail("{}: not an undo record (written by `peft diff apply`)", undo_path);
  LoadOptions options;
  options.num_labels = head_labels(undo);
  AdaptedModel model(load_sequence_classifier(dir, options));
  apply_diff(*model.model(), undo);  // its checksum is that of the patched model
  save_merged_model(model, dir, a.out);
  std::cout << fmt::format("reverted {} entries in {} tensors; wrote {}\n", undo.nnz(), undo.tensors.size(), a.out);
}

}  // namespace

void add_diff_command(CLI::App& app) {
  auto a = std::make_shared<DiffArgs>();
  CLI::App* cmd = app.add_subcommand("diff", "Sparse diff-pruning task files: info, apply, revert");
  cmd->require_subcommand(1);
  CLI::App* info = cmd->add_subcommand("info", "Show what a diff file holds and its size against a dense save");
  info->add_option("file", a->file, "diff file, or a task/run folder holding diff.peftdiff")->required();
  info->add_flag("--json", a->json, "print JSON");
  info->callback([a] { run_info(*a); });
  CLI::App* apply = cmd->add_subcommand("apply", "Write base + diff as an HF model folder (with an undo record)");
  apply->add_option("--model", a->model, "base model folder or installed model name")->required();
  apply->add_option("--diff", a->diff, "diff file, or a task/run folder holding diff.peftdiff")->required();
  apply->add_option("--out", a->out, "output folder")->required();
  apply->callback([a] { run_apply(*a); });
  CLI::App* revert = cmd->add_subcommand("revert", "Undo `peft diff apply`: write the base tensors back, bit-exactly");
  revert->add_option("--model", a->model, "folder written by `peft diff apply`")->required();
  revert->add_option("--undo", a->undo, "undo record (default MODEL/diff_undo.peftdiff)");
  revert->add_option("--out", a->out, "output folder")->required();
  revert->callback([a] { run_revert(*a); });
}

}  // namespace peft::cli
