#pragma once
// `peft serve`: an OpenAI-compatible HTTP server over a MultiTaskModel (cpp-httplib).
//
//   GET  /health                  {"status": "ok"} (no API key needed)
//   GET  /v1/models               the base model and every task
//   POST /v1/embeddings           OpenAI's request and response; "model": the base model or a task
//   POST /v1/classify             {"model": TASK, "input": [text | [text, pair], ...]}
//                                 -> {"data": [{"index", "label", "probabilities": {label: p}}]}
//   POST /v1/completions          decoders; "model": the base model or a task (adapter), "stream"
//   POST /v1/chat/completions     decoders; the model's chat template; "stream" as server-sent events
//   POST /v1/tasks                {"name", "path"}: loads a task folder; DELETE /v1/tasks/NAME unloads
//   GET  /metrics                 Prometheus text: requests, latency, batch sizes, queue depth, tokens
//
// Requests are batched across clients and tasks by one model worker: it waits up to max_wait_ms
// after the first queued request for more, then runs up to max_batch_rows rows as one mixed-task
// batch (generation batches requests with the same sampling options). Errors are OpenAI-shaped JSON:
// 400 malformed JSON or wrong types, 401 missing/wrong API key, 404 unknown model/task or path,
// 413 body over the limit, 415 a non-JSON body, 503 queue full (Retry-After), 504 past the timeout.
#include <cstddef>
#include <memory>
#include <string>

#include "peft/serve/multi_task.h"

namespace peft::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (see Server::port())
  std::string api_key;            // set: every endpoint but /health needs "Authorization: Bearer KEY"
  std::string model_name;         // the base model's id in "model" and /v1/models (default: as loaded)
  size_t max_body_bytes = 8 << 20;
  size_t max_batch_rows = 32;
  double max_wait_ms = 5;
  size_t max_queue_rows = 4096;   // rows waiting beyond this: 503
  double request_timeout_s = 120;
  bool reject_long_inputs = false;  // 400 for inputs over the task's max_seq_length instead of truncating
  size_t http_threads = 64;       // connections served at once (slow clients each hold one)
  double read_timeout_s = 10;     // a client that sends nothing for this long is dropped
};

class Server {
 public:
  Server(MultiTaskModel& model, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (throws peft::Error naming the address when it cannot) and returns the port.
  int bind();
  // Serves until stop(); then finishes the requests in flight and returns.
  void run();
  // Stops accepting connections; run() returns once in-flight requests are answered. Safe from any
  // thread (e.g. a signal-waiting one).
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace peft::serve
