#include "peft/train/report.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "peft/error.h"

namespace peft::train {
namespace {

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

// The metric keys of eval lines, apart from bookkeeping fields.
std::vector<std::string> metric_keys(const std::vector<nlohmann::json>& eval) {
  static const std::set<std::string> skip{"type", "step", "epoch", "examples", "loss", "main_metric"};
  std::vector<std::string> keys;
  for (const auto& line : eval)
    for (auto& [k, v] : line.items())
      if (!skip.count(k) && v.is_number() && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  return keys;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// One chart panel: axes, ticks, polylines, legend.
void draw_panel(std::ostringstream& svg, double x0, double y0, double w, double h, const std::string& title,
                const std::vector<Series>& series) {
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      xmin = std::min(xmin, x), xmax = std::max(xmax, x);
      ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  svg << fmt::format(R"(<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>)", x0, y0 - 8, escape(title)) << "\n";
  svg << fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>)", x0, y0, w, h) << "\n";
  if (xmin > xmax) {
    svg << fmt::format(R"(<text x="{}" y="{}" font-size="12" fill="#888">no data</text>)", x0 + 10, y0 + h / 2) << "\n";
    return;
  }
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1e-6, ymin -= 1e-6;
  const double pad = (ymax - ymin) * 0.05;
  ymin -= pad, ymax += pad;
  auto px = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * w; };
  auto py = [&](double y) { return y0 + h - (y - ymin) / (ymax - ymin) * h; };
  for (int i = 0; i <= 4; ++i) {
    const double y = ymin + (ymax - ymin) * i / 4, x = xmin + (xmax - xmin) * i / 4;
    svg << fmt::format(R"(<line x1="{0}" y1="{1:.1f}" x2="{2}" y2="{1:.1f}" stroke="#eee"/>)", x0, py(y), x0 + w) << "\n";
    svg << fmt::format(R"(<text x="{}" y="{:.1f}" font-size="10" text-anchor="end">{:.4g}</text>)", x0 - 4, py(y) + 3, y) << "\n";
    svg << fmt::format(R"(<text x="{:.1f}" y="{}" font-size="10" text-anchor="middle">{:.0f}</text>)", px(x), y0 + h + 14, x) << "\n";
  }
  svg << fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">step</text>)", x0 + w / 2, y0 + h + 28) << "\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    std::string pts;
    for (auto [x, y] : s.points) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    svg << fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>)", s.color, pts) << "\n";
    if (s.points.size() < 30)
      for (auto [x, y] : s.points)
        svg << fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>)", px(x), py(y), s.color) << "\n";
    svg << fmt::format(R"(<text x="{}" y="{}" font-size="11" fill="{}">{}</text>)", x0 + w - 150, y0 + 16 + 14 * i,
                       s.color, escape(s.name)) << "\n";
  }
}

}  // namespace

RunLog read_run_log(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / "metrics.jsonl").string();
  std::ifstream in(path);
  if (!in) fail("{}: cannot open (is {} a run folder?)", path, run_dir);
  RunLog log;
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      fail("{}:{}: invalid JSON", path, line_no);
    }
    (j.value("type", "") == "eval" ? log.eval : log.train).push_back(std::move(j));
  }
  if (log.train.empty() && log.eval.empty()) fail("{}: no entries yet", path);
  return log;
}

std::string render_svg(const RunLog& log, const std::string& title) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  Series train_loss{"train loss", colors[0], {}}, dev_loss{"dev loss", colors[1], {}};
  for (const auto& j : log.train) train_loss.points.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
  for (const auto& j : log.eval)
    if (j.contains("loss")) dev_loss.points.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
  std::vector<Series> metrics;
  for (const auto& key : metric_keys(log.eval)) {
    Series s{key, colors[(metrics.size() + 2) % 6], {}};
    for (const auto& j : log.eval)
      if (j.contains(key)) s.points.emplace_back(j["step"].get<double>(), j[key].get<double>());
    metrics.push_back(std::move(s));
  }
  const double w = 820, panel_w = 340, panel_h = 240;
  std::ostringstream svg;
  svg << fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="340" font-family="sans-serif">)", w) << "\n";
  svg << R"(<rect width="100%" height="100%" fill="white"/>)" << "\n";
  svg << fmt::format(R"(<text x="20" y="24" font-size="16">{}</text>)", escape(title)) << "\n";
  std::vector<Series> losses{train_loss};
  if (!dev_loss.points.empty()) losses.push_back(dev_loss);
  draw_panel(svg, 60, 60, panel_w, panel_h, "loss", losses);
  draw_panel(svg, 60 + panel_w + 70, 60, panel_w, panel_h, "dev metrics", metrics);
  svg << "</svg>\n";
  return svg.str();
}

std::string summary_table(const RunLog& log) {
  const auto keys = metric_keys(log.eval);
  size_t best = 0;
  for (size_t i = 0; i < log.eval.size(); ++i)
    if (log.eval[i].value("main_metric", 0.0) > log.eval[best].value("main_metric", 0.0)) best = i;
  std::string out = fmt::format("{:>8} {:>7} {:>10}", "step", "epoch", "dev loss");
  for (const auto& k : keys) out += fmt::format(" {:>20}", k);
  out += "\n";
  for (size_t i = 0; i < log.eval.size(); ++i) {
    const auto& j = log.eval[i];
    out += fmt::format("{:>8} {:>7} {:>10.4f}", j.value("step", 0), j.value("epoch", 0), j.value("loss", 0.0));
    for (const auto& k : keys) out += fmt::format(" {:>20.4f}", j.value(k, 0.0));
    out += i == best ? "  <- best\n" : "\n";
  }
  if (log.eval.empty()) out += "(no evaluations)\n";
  if (!log.train.empty())
    out += fmt::format("last train loss {:.4f} at step {}\n", log.train.back().value("loss", 0.0),
                       log.train.back().value("step", 0));
  return out;
}

}  // namespace peft::train
