// peft serve --model M --task NAME=DIR ...: an OpenAI-compatible HTTP server of many tasks on one base
// model (see peft/serve/server.h for the endpoints). SIGTERM or SIGINT stops it gracefully: requests
// in flight are answered, then it exits 0.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <pthread.h>

#include "commands.h"
#include "io_helpers.h"
#include "peft/error.h"
#include "peft/serve/server.h"

namespace peft::cli {
namespace {

struct ServeArgs {
  std::string model, device = "cpu", dtype = "float32";
  std::vector<std::string> tasks;
  serve::ServerOptions server;
  double max_body_mb = 8;
};

void run_serve(ServeArgs a) {
  if (a.server.max_batch_rows < 1) fail("--max-batch must be at least 1");
  if (a.max_body_mb <= 0) fail("--max-body-mb must be > 0");
  if (a.server.request_timeout_s <= 0) fail("--timeout must be > 0");
  if (a.server.api_key.empty())
    if (const char* key = std::getenv("PEFT_API_KEY")) a.server.api_key = key;
  a.server.max_body_bytes = static_cast<size_t>(a.max_body_mb * 1024 * 1024);
  std::vector<std::pair<std::string, std::string>> tasks;
  for (auto& t : a.tasks) {
    const size_t eq = t.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == t.size()) fail("--task {}: expected NAME=DIR", t);
    tasks.emplace_back(t.substr(0, eq), t.substr(eq + 1));
  }

  // Signals go to one waiting thread, not to whichever thread happens to run (blocked before any
  // thread starts, so every later thread inherits the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  serve::MultiTaskModel::Options options;
  options.device = parse_device(a.device);
  options.dtype = a.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat;
  serve::MultiTaskModel model(a.model, options);
  for (auto& [name, dir] : tasks) {
    try {
      model.load_task(name, dir);
    } catch (const Error& e) {
      fail("--task {}={}: {}", name, dir, e.what());
    }
  }
  serve::Server server(model, a.server);
  const int port = server.bind();
  std::thread([&server, signals] {
    int received = 0;
    sigwait(&signals, &received);
    std::cerr << "peft serve: " << (received == SIGTERM ? "SIGTERM" : "SIGINT")
              << ": finishing requests in flight, then stopping\n";
    server.stop();
  }).detach();
  std::cerr << "peft serve: " << a.model << " with " << tasks.size() << " task(s) on http://" << a.server.host << ":"
            << port << "\n";
  server.run();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a base model and its tasks over an OpenAI-compatible HTTP API");
  cmd->add_option("--model", a->model, "base model: folder, installed package name or GGUF file")->required();
  cmd->add_option("--task", a->tasks, "NAME=DIR: a task or run folder to serve as NAME (repeatable)");
  cmd->add_option("--host", a->server.host, "address to bind (default 127.0.0.1)");
  cmd->add_option("--port", a->server.port, "port (default 8080; 0: any free port)");
  cmd->add_option("--api-key", a->server.api_key, "require Authorization: Bearer KEY (default: $PEFT_API_KEY, else none)");
  cmd->add_option("--served-model-name", a->server.model_name, "the base model's id in requests and /v1/models");
  cmd->add_option("--max-batch", a->server.max_batch_rows, "rows per model batch (default 32)");
  cmd->add_option("--max-wait-ms", a->server.max_wait_ms, "how long a batch waits for more requests (default 5)");
  cmd->add_option("--max-queue", a->server.max_queue_rows, "rows waiting before requests get 503 (default 4096)");
  cmd->add_option("--max-body-mb", a->max_body_mb, "largest request body in MiB (default 8; larger: 413)");
  cmd->add_option("--timeout", a->server.request_timeout_s, "seconds a request may take (default 120; then 504)");
  cmd->add_flag("--reject-long-inputs", a->server.reject_long_inputs,
                "answer 400 for inputs over the task's max_seq_length instead of truncating them");
  cmd->add_option("--threads", a->server.http_threads, "connections served at once (default 64)");
  cmd->add_option("--device", a->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", a->dtype, "float32 | bfloat16 (decoders)")->check(CLI::IsMember({"float32", "bfloat16"}));
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace peft::cli
