// Serving many tasks on one base model (all-MiniLM-L6-v2, SST-2 dev sentences, batch 32):
//   1. one merged LoRA task (the plain single-task forward) vs a batch mixing 8 LoRA tasks
//   2. TASKS LoRA tasks (r 8 on query/value, ~300 KB each) loaded at once: resident memory per task,
//      and a batch mixing 32 distinct tasks vs the merged task
//   3. loading one more task (the pause it puts between two batches)
//   4. peft serve over loopback: 32-input requests vs the library, and many one-input clients
//      (dynamic batching) with p50/p99 latency; resident memory over a soak of SOAK requests
//   bench_serve [TASKS=1000] [SOAK=3000] [THREADS=2]
// Prints a table and one JSON line with every figure.
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "peft/data/batching.h"
#include "peft/data/task.h"
#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/spec.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/runtime.h"
#include "peft/serve/server.h"
#include "peft/train/adapted.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double rss_mb() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// TASKS LoRA task folders over MiniLM (random, trained-looking tensors), written once and reused.
std::vector<fs::path> make_tasks(const std::string& model_dir, int count, const fs::path& root) {
  std::vector<fs::path> dirs;
  peft::AdaptedModel m(peft::load_sequence_classifier(model_dir));
  m.add(peft::make_methods(peft::parse_method_spec("lora:r=8,target_modules=query|value")));
  json task = {{"task", "sst2"}, {"labels", {"negative", "positive"}}, {"metrics", {"accuracy"}}, {"regression", false},
               {"base_model", model_dir}, {"max_seq_length", 128}};
  for (int i = 0; i < count; ++i) {
    const fs::path dir = root / fmt::format("task{:04d}", i);
    dirs.push_back(dir);
    if (fs::exists(dir / "task.json")) continue;
    torch::manual_seed(i + 1);
    {
      torch::NoGradGuard no_grad;
      for (auto& t : m.trainable_tensors()) t.tensor.normal_(0, 0.05);
    }
    peft::save_adapter(m, dir.string(), model_dir);
    peft::io::write_file_atomically((dir / "task.json").string(), task.dump() + "\n");
  }
  return dirs;
}

std::vector<std::string> sst2_sentences(size_t n) {
  peft::data::DataSource source;
  source.task = "sst2";
  // Run from the project root (../shared/data) or from build/; PEFT_SHARED_DATA overrides.
  std::string data = std::getenv("PEFT_SHARED_DATA") ? std::getenv("PEFT_SHARED_DATA") : "../shared/data";
  if (!fs::exists(data) && fs::exists("../../shared/data")) data = "../../shared/data";
  source.data_dir = data + "/glue";
  auto dev = peft::data::load_split(source, "dev");
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(dev.examples[i % dev.examples.size()].text);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  peft::tune_allocator();
  const int task_count = argc > 1 ? std::stoi(argv[1]) : 1000;
  const int soak = argc > 2 ? std::stoi(argv[2]) : 3000;
  at::set_num_threads(argc > 3 ? std::stoi(argv[3]) : 2);
  try {
    const std::string model_dir = peft::resolve_model_dir("all-MiniLM-L6-v2").string();
    const fs::path root = fs::temp_directory_path() / "peft_bench_serve_tasks";
    const auto dirs = make_tasks(model_dir, std::max(task_count, 32), root);
    const auto sentences = sst2_sentences(256);
    constexpr size_t kBatch = 32;
    json out;

    // 1. One merged task, the plain single-task forward (what `peft predict` runs).
    auto single = peft::train::load_task(dirs[0].string());
    single.model->merge();
    std::vector<std::vector<std::string>> batches;
    for (size_t b = 0; b + kBatch <= sentences.size(); b += kBatch)
      batches.emplace_back(sentences.begin() + static_cast<std::ptrdiff_t>(b),
                           sentences.begin() + static_cast<std::ptrdiff_t>(b + kBatch));
    size_t at = 0;
    auto merged_step = [&] {
      peft::data::Dataset d;
      d.labels = {"negative", "positive"};
      for (auto& s : batches[at++ % batches.size()]) d.examples.push_back({s, std::nullopt, std::nullopt, 0});
      const auto tokens = peft::data::tokenize(d, *single.tokenizer, 128);
      std::vector<size_t> all(tokens.size());
      std::iota(all.begin(), all.end(), 0);
      torch::InferenceMode inference;
      auto batch = peft::data::collate(tokens, all);
      batch.input.skip_padding_columns = true;
      single.trainable.forward(batch.input);
    };
    const double merged_s = peft::bench::median_seconds(15, merged_step);
    out["merged_rows_per_s"] = kBatch / merged_s;

    // Mixed batches on the multi-task model.
    const double rss_before = rss_mb();
    peft::serve::MultiTaskModel model(model_dir);
    const double rss_base = rss_mb();
    auto mixed_rate = [&](size_t distinct) {
      size_t k = 0;
      auto step = [&] {
        std::vector<peft::serve::TaskRow> rows;
        const auto& texts = batches[k++ % batches.size()];
        for (size_t r = 0; r < texts.size(); ++r) rows.push_back({fmt::format("t{}", r % distinct), {texts[r], std::nullopt}});
        model.classify(rows);
      };
      return kBatch / peft::bench::median_seconds(15, step);
    };
    for (int i = 0; i < 8; ++i) model.load_task(fmt::format("t{}", i), dirs[static_cast<size_t>(i)].string());
    out["mixed8_rows_per_s"] = mixed_rate(8);

    // 2. Many tasks at once.
    int64_t task_bytes = 0;
    for (int i = 8; i < task_count; ++i) model.load_task(fmt::format("t{}", i), dirs[static_cast<size_t>(i)].string());
    for (auto& t : model.tasks()) task_bytes += t.bytes;
    const double rss_tasks = rss_mb();
    out["tasks"] = task_count;
    out["task_mb_each"] = task_bytes / 1048576.0 / task_count;
    out["rss_mb"] = {{"process_before_base", rss_before}, {"with_base", rss_base}, {"with_tasks", rss_tasks}};
    out["overhead_kb_per_task"] = ((rss_tasks - rss_base) * 1048576.0 - static_cast<double>(task_bytes)) / 1024.0 / task_count;
    out["mixed32_of_all_rows_per_s"] = mixed_rate(32);

    // 3. Loading one more task while serving: the pause between two batches.
    const double load_s = peft::bench::seconds([&] { model.load_task("late", dirs[1].string()); });
    out["load_one_task_ms"] = load_s * 1e3;
    out["batch_ms"] = merged_s * 1e3;
    model.unload_task("late");

    // 4. The server over loopback.
    peft::serve::ServerOptions options;
    options.port = 0;
    options.max_wait_ms = 2;
    peft::serve::Server server(model, options);
    const int port = server.bind();
    std::thread serving([&] { server.run(); });
    auto request = [&](httplib::Client& c, const std::vector<std::string>& texts, const std::string& task) {
      auto res = c.Post("/v1/classify", json{{"model", task}, {"input", texts}}.dump(), "application/json");
      if (!res || res->status != 200) peft::fail("request failed: {}", res ? res->body : httplib::to_string(res.error()));
    };
    {
      httplib::Client c("127.0.0.1", port);
      size_t k = 0;
      const double s = peft::bench::median_seconds(15, [&] { request(c, batches[k++ % batches.size()], "t0"); });
      out["server_batch32_rows_per_s"] = kBatch / s;
      out["library_batch32_one_task_rows_per_s"] = mixed_rate(1);
    }
    size_t errors = 0;
    std::string first_error;
    auto clients_run = [&](int clients, int per_client, std::vector<double>& latencies) {
      std::mutex m;
      std::vector<std::thread> threads;
      const double wall = peft::bench::seconds([&] {
        for (int c = 0; c < clients; ++c)
          threads.emplace_back([&, c] {
            httplib::Client client("127.0.0.1", port);
            client.set_read_timeout(120, 0);
            for (int r = 0; r < per_client; ++r) {
              const std::string& text = sentences[static_cast<size_t>(c * per_client + r) % sentences.size()];
              try {
                const double s = peft::bench::seconds([&] { request(client, {text}, fmt::format("t{}", (c + r) % 32)); });
                std::lock_guard lock(m);
                latencies.push_back(s);
              } catch (const std::exception& e) {
                std::lock_guard lock(m);
                if (errors++ == 0) first_error = e.what();
              }
            }
          });
        for (auto& t : threads) t.join();
      });
      return latencies.size() / wall;
    };
    std::vector<double> lat;
    const double rate = clients_run(64, 8, lat);
    std::sort(lat.begin(), lat.end());
    out["errors"] = errors;
    if (errors) std::cerr << "bench_serve: " << errors << " failed requests, e.g. " << first_error << "\n";
    out["clients64_one_input"] = {{"requests_per_s", rate}, {"p50_ms", lat[lat.size() / 2] * 1e3},
                                  {"p99_ms", lat[lat.size() * 99 / 100] * 1e3}};
    const double rss_soak_start = rss_mb();
    std::vector<double> soak_lat;
    const double soak_rate = clients_run(16, soak / 16, soak_lat);
    out["soak"] = {{"requests", soak_lat.size()}, {"requests_per_s", soak_rate}, {"rss_start_mb", rss_soak_start},
                   {"rss_end_mb", rss_mb()}};
    server.stop();
    serving.join();

    std::cout << fmt::format("merged single task           {:8.1f} rows/s\n", out["merged_rows_per_s"].get<double>());
    std::cout << fmt::format("8 LoRA tasks mixed           {:8.1f} rows/s  ({:.2f}x merged)\n",
                             out["mixed8_rows_per_s"].get<double>(),
                             out["mixed8_rows_per_s"].get<double>() / out["merged_rows_per_s"].get<double>());
    std::cout << fmt::format("{} tasks loaded, 32 mixed  {:8.1f} rows/s  ({:.2f}x merged)\n", task_count,
                             out["mixed32_of_all_rows_per_s"].get<double>(),
                             out["mixed32_of_all_rows_per_s"].get<double>() / out["merged_rows_per_s"].get<double>());
    std::cout << fmt::format("resident: base {:.0f} MB, +{} tasks {:.0f} MB ({:.3f} MB of tensors each, {:.1f} KB overhead each)\n",
                             rss_base - rss_before, task_count, rss_tasks - rss_base, out["task_mb_each"].get<double>(),
                             out["overhead_kb_per_task"].get<double>());
    std::cout << fmt::format("load one task while serving  {:8.1f} ms (a batch takes {:.1f} ms)\n", load_s * 1e3, merged_s * 1e3);
    std::cout << fmt::format("server, 32-input requests    {:8.1f} rows/s  ({:.2f}x the library)\n",
                             out["server_batch32_rows_per_s"].get<double>(),
                             out["server_batch32_rows_per_s"].get<double>() / out["library_batch32_one_task_rows_per_s"].get<double>());
    std::cout << fmt::format("64 clients x 1 input         {:8.1f} req/s, p50 {:.1f} ms, p99 {:.1f} ms\n", rate,
                             out["clients64_one_input"]["p50_ms"].get<double>(), out["clients64_one_input"]["p99_ms"].get<double>());
    std::cout << fmt::format("soak {} requests            {:8.1f} req/s, RSS {:.0f} -> {:.0f} MB\n", soak_lat.size(), soak_rate,
                             rss_soak_start, out["soak"]["rss_end_mb"].get<double>());
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_serve: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
