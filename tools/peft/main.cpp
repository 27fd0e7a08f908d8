// The `peft` command-line tool: one subcommand per file (see commands.h).
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "peft/error.h"
#include "peft/runtime.h"
#include "peft/version.h"

int main(int argc, char** argv) {
  peft::tune_allocator();
  // A file-size limit (ulimit -f) would kill the process mid-write; ignored, the write fails with
  // EFBIG and the atomic writers report it as a one-line error, leaving the old file in place.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"peft: parameter-efficient fine-tuning of pretrained transformers"};
  app.set_version_flag("--version", std::string("peft ") + peft::version());
  app.require_subcommand(1);
  peft::cli::add_info_command(app);
  peft::cli::add_tokenize_command(app);
  peft::cli::add_embed_command(app);
  peft::cli::add_params_command(app);
  peft::cli::add_merge_command(app);
  peft::cli::add_train_command(app);
  peft::cli::add_eval_command(app);
  peft::cli::add_predict_command(app);
  peft::cli::add_report_command(app);
  peft::cli::add_quickstart_command(app);
  peft::cli::add_diff_command(app);
  peft::cli::add_generate_command(app);
  peft::cli::add_export_command(app);
  peft::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const peft::Error& e) {
    std::cerr << "peft: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "peft: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "peft: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
