#pragma once
// Subcommands of the `peft` CLI: each file adds one to the app. Only the CLI prints and exits;
// the library throws peft::Error, which main() turns into one line on stderr and exit code 1.
#include <CLI/CLI.hpp>

namespace peft::cli {

void add_info_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_params_command(CLI::App& app);
void add_merge_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_quickstart_command(CLI::App& app);
void add_diff_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace peft::cli
