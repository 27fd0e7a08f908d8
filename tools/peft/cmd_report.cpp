// peft report RUN_DIR: loss and metric curves as an SVG, and a summary table.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "peft/io/atomic_file.h"
#include "peft/train/report.h"

namespace peft::cli {
namespace {

struct ReportArgs {
  std::string run_dir, svg;
};

void run_report(const ReportArgs& a) {
  const train::RunLog log = train::read_run_log(a.run_dir);
  const std::string svg = a.svg.empty() ? (std::filesystem::path(a.run_dir) / "report.svg").string() : a.svg;
  io::write_file_atomically(svg, train::render_svg(log, std::filesystem::path(a.run_dir).filename().string()));
  std::cout << train::summary_table(log);
  std::ifstream results(std::filesystem::path(a.run_dir) / "results.json");
  if (results) std::cout << "results: " << nlohmann::json::parse(results).dump() << "\n";
  std::cout << "curves written to " << svg << "\n";
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand("report", "Draw a run's loss and metric curves (SVG) and print a summary");
  cmd->add_option("run", a->run_dir, "run folder written by `peft train`")->required();
  cmd->add_option("--svg", a->svg, "where to write the SVG (default RUN_DIR/report.svg)");
  cmd->callback([a] { run_report(*a); });
}

}  // namespace peft::cli
