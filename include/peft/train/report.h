#pragma once
// `peft report`: a run's metrics.jsonl drawn as an SVG (training loss and dev metrics against
// steps) and a plain-text summary table.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::train {

struct RunLog {
  std::vector<nlohmann::json> train;  // {"step", "loss", "lr", ...}
  std::vector<nlohmann::json> eval;   // {"step", "main_metric", metric..., "loss"}
};

RunLog read_run_log(const std::string& run_dir);  // throws when metrics.jsonl is missing or empty

std::string render_svg(const RunLog& log, const std::string& title);

// One row per evaluation (step, dev loss, metrics), the best one marked, then the last train loss.
std::string summary_table(const RunLog& log);

}  // namespace peft::train
