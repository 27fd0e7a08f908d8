#include "peft/serve/server.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>

#include <httplib.h>

#include "api.h"
#include "batcher.h"
#include "metrics.h"
#include "peft/generate/chat_template.h"
#include "peft/generate/text_generation.h"

namespace fs = std::filesystem;

namespace peft::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

thread_local Clock::time_point request_started;

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  send_json(res, status, error_body(status, type, message));
}

// The metrics label of a path (task names stay out of label values).
std::string endpoint_of(const std::string& path) {
  for (const char* known : {"/health", "/metrics", "/v1/models", "/v1/embeddings", "/v1/classify", "/v1/completions",
                            "/v1/chat/completions"})
    if (path == known) return known;
  if (path == "/v1/tasks" || path.rfind("/v1/tasks/", 0) == 0) return "/v1/tasks";
  return "other";
}

// curl -d sends form-urlencoded by default; accept it and JSON, refuse other types.
bool json_content_type(const httplib::Request& req) {
  if (!req.has_header("Content-Type")) return true;
  const std::string type = req.get_header_value("Content-Type");
  return type.find("json") != std::string::npos || type.rfind("application/x-www-form-urlencoded", 0) == 0 ||
         type.rfind("text/plain", 0) == 0;
}

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }

int64_t unix_time() { return static_cast<int64_t>(std::time(nullptr)); }

// httplib listens with a backlog of 5 connections, built into the library: a burst of clients then
// overflows the accept queue and some of their connections die. The listening socket is re-listened
// with a backlog that fits a burst.
class HttpServer : public httplib::Server {
 public:
  void widen_backlog(int backlog) {
    const socket_t sock = svr_sock_;
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

}  // namespace

struct Server::Impl {
  MultiTaskModel& model;
  ServerOptions options;
  Metrics metrics;
  Batcher batcher;
  HttpServer http;
  std::string model_id;
  std::atomic<uint64_t> next_id{1};
  std::atomic<bool> stop_requested{false};
  int port = -1;

  Impl(MultiTaskModel& m, ServerOptions o)
      : model(m),
        options(std::move(o)),
        batcher(m, metrics, options.max_batch_rows, options.max_wait_ms, options.max_queue_rows) {
    model_id = options.model_name.empty() ? model.base_name() : options.model_name;
    routes();
  }

  // "model" of a request: "" for the base model, else a loaded task.
  std::string resolve(const std::string& name) const {
    if (model.has_task(name)) return name;
    // The base by its id, the path it was loaded from, or its last component (so a hub-style
    // "sentence-transformers/all-MiniLM-L6-v2" names an all-MiniLM-L6-v2 base too).
    const std::string last = fs::path(name).filename().string();
    for (const std::string& id : {model_id, model.base_name()})
      if (name == id || last == fs::path(id).filename().string() || last == fs::path(id).stem().string()) return "";
    throw HttpError(404, "not_found_error", fmt::format("the model \"{}\" does not exist (GET /v1/models lists them)", name));
  }

  std::string next_request_id(const char* prefix) { return fmt::format("{}-{:x}", prefix, next_id++); }

  size_t limit_of(const std::string& task) const {
    if (task.empty()) return model.base_max_length();
    return model.task(task).value().max_seq_length;
  }

  // Tokens of each input (after truncation); with reject_long_inputs, an input over its limit is a 400.
  int64_t count_tokens(const std::vector<TaskRow>& rows) const {
    int64_t total = 0;
    tok::EncodeOptions encode;
    encode.truncation = tok::Truncation::None;
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& in = rows[i].input;
      const size_t n = (in.pair ? model.tokenizer().encode(in.text, std::string_view(*in.pair), encode)
                                : model.tokenizer().encode(in.text, std::nullopt, encode)).ids.size();
      const size_t limit = limit_of(rows[i].task);
      if (n > limit && options.reject_long_inputs)
        bad_request(fmt::format("input {} has {} tokens; the limit is {}", i, n, limit));
      total += static_cast<int64_t>(std::min(n, limit));
    }
    return total;
  }

  // Queues the job and waits for its result; 503 when the queue is full, 504 after the timeout.
  JobResult submit_and_wait(const std::shared_ptr<Job>& job) {
    std::future<JobResult> result = job->done.get_future();
    if (!batcher.submit(job))
      throw HttpError(503, "server_busy", "the server is at capacity; retry shortly");
    const auto timeout = std::chrono::duration<double>(options.request_timeout_s);
    if (result.wait_for(timeout) != std::future_status::ready) {
      job->cancelled = true;
      throw HttpError(504, "timeout", fmt::format("the request took longer than {} s", options.request_timeout_s));
    }
    return result.get();
  }

  // Runs a handler body, turning errors into OpenAI-shaped JSON.
  template <typename F>
  void guarded(httplib::Response& res, F&& body) {
    try {
      body();
    } catch (const HttpError& e) {
      if (e.status == 503) res.set_header("Retry-After", "1");
      send_error(res, e.status, e.type, e.what());
    } catch (const Error& e) {
      const std::string message = e.what();
      const bool unknown = message.rfind("unknown task", 0) == 0;
      send_error(res, unknown ? 404 : 400, unknown ? "not_found_error" : "invalid_request_error", message);
    } catch (const std::exception& e) {
      send_error(res, 500, "server_error", e.what());
    }
  }

  json parse_post(const httplib::Request& req) {
    if (!json_content_type(req)) throw HttpError(415, "invalid_request_error", "the request body must be JSON (Content-Type: application/json)");
    return parse_body(req.body);
  }

  void routes() {
    http.set_payload_max_length(options.max_body_bytes);
    http.set_read_timeout(static_cast<time_t>(options.read_timeout_s),
                          static_cast<time_t>((options.read_timeout_s - std::floor(options.read_timeout_s)) * 1e6));
    http.set_write_timeout(30, 0);
    http.set_keep_alive_timeout(5);
    const size_t threads = std::max<size_t>(2, options.http_threads);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      request_started = Clock::now();
      if (!options.api_key.empty() && req.path != "/health" &&
          req.get_header_value("Authorization") != "Bearer " + options.api_key) {
        send_error(res, 401, "authentication_error", "missing or wrong API key (Authorization: Bearer KEY)");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413) send_error(res, 413, "invalid_request_error", "the request body is over the size limit");
      else if (res.status == 404) send_error(res, 404, "not_found_error", fmt::format("no endpoint {} {}", req.method, req.path));
      else send_error(res, res.status, "invalid_request_error", fmt::format("HTTP {}", res.status));
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, 500, "server_error", "internal error");
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double seconds = std::chrono::duration<double>(Clock::now() - request_started).count();
      metrics.request(endpoint_of(req.path), res.status, seconds);
    });

    http.Get("/health", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, {{"status", "ok"}}); });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus(batcher.queued_rows(), model.tasks().size()), "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json data = json::array();
      data.push_back({{"id", model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "peft.cpp"}});
      for (auto& t : model.tasks())
        data.push_back({{"id", t.name}, {"object", "model"}, {"created", 0}, {"owned_by", "peft.cpp"},
                        {"parent", model_id}, {"root", model_id}, {"methods", t.methods},
                        {"labels", t.info.labels}, {"parameters", t.parameters}, {"bytes", t.bytes}});
      send_json(res, 200, {{"object", "list"}, {"data", data}});
    });
    http.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { embeddings(parse_post(req), res); });
    });
    http.Post("/v1/classify", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { classify(parse_post(req), res); });
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { completions(parse_post(req), res); });
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { chat(parse_post(req), res); });
    });
    http.Post("/v1/tasks", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        const TaskLoadRequest r = parse_task_load(parse_post(req));
        if (model.has_task(r.name)) throw HttpError(409, "invalid_request_error", fmt::format("task \"{}\" is already loaded", r.name));
        if (!fs::exists(r.path)) throw HttpError(404, "not_found_error", fmt::format("{}: no such folder", r.path));
        const TaskSummary t = model.load_task(r.name, r.path);
        send_json(res, 201, {{"id", t.name}, {"object", "model"}, {"methods", t.methods}, {"parameters", t.parameters},
                             {"bytes", t.bytes}, {"source", t.source}});
      });
    });
    http.Delete(R"(/v1/tasks/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        const std::string name = req.matches[1];
        if (!model.has_task(name)) throw HttpError(404, "not_found_error", fmt::format("no task \"{}\"", name));
        if (const size_t rows = model.decoding_rows(name))
          throw HttpError(409, "invalid_request_error",
                          fmt::format("task \"{}\" is generating for {} prompts; unload it when they finish", name, rows));
        model.unload_task(name);
        send_json(res, 200, {{"id", name}, {"object", "model"}, {"deleted", true}});
      });
    });
  }

  void embeddings(const json& body, httplib::Response& res) {
    const EmbeddingsRequest r = parse_embeddings(body);
    if (model.causal()) bad_request("embeddings need an encoder base model");
    const std::string task = resolve(r.model);
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::Embed;
    for (auto& text : r.inputs) job->rows.push_back({task, {text, std::nullopt}});
    const int64_t tokens = count_tokens(job->rows);
    JobResult result = submit_and_wait(job);
    metrics.tokens(tokens, 0);
    json data = json::array();
    for (size_t i = 0; i < result.vectors.size(); ++i)
      data.push_back({{"object", "embedding"}, {"index", i},
                      {"embedding", r.base64 ? json(base64_floats(result.vectors[i])) : json(result.vectors[i])}});
    send_json(res, 200, {{"object", "list"}, {"data", data}, {"model", r.model},
                         {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  }

  void classify(const json& body, httplib::Response& res) {
    const ClassifyRequest r = parse_classify(body);
    if (model.causal()) bad_request("classification needs an encoder base model");
    const std::string task = resolve(r.model);
    if (task.empty()) bad_request(fmt::format("\"model\" must name a classification task, not the base model"));
    const TaskSummary info = model.task(task).value();
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::Classify;
    for (auto& in : r.inputs) job->rows.push_back({task, in});
    const int64_t tokens = count_tokens(job->rows);
    JobResult result = submit_and_wait(job);
    metrics.tokens(tokens, 0);
    json data = json::array();
    for (size_t i = 0; i < result.classes.size(); ++i) {
      const Classification& c = result.classes[i];
      if (c.score) {
        data.push_back({{"index", i}, {"score", *c.score}});
        continue;
      }
      json p = json::object();
      for (size_t k = 0; k < c.probabilities.size(); ++k) p[info.info.labels[k]] = c.probabilities[k];
      data.push_back({{"index", i}, {"label", c.label}, {"probabilities", p}});
    }
    send_json(res, 200, {{"object", "list"}, {"data", data}, {"model", r.model},
                         {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  }

  TextGenerationOptions generation_options(const SamplingRequest& s) const {
    TextGenerationOptions o;
    GenerationOptions& g = o.generation;
    g.max_new_tokens = s.max_tokens;
    g.do_sample = s.temperature > 0;
    g.temperature = s.temperature > 0 ? s.temperature : 1.0;
    g.top_p = s.top_p;
    g.top_k = s.top_k;
    g.min_p = s.min_p;
    g.repetition_penalty = s.repetition_penalty;
    g.seed = s.seed;
    set_stop_and_pad(g, model.tokenizer());
    o.stop_strings = s.stop;
    return o;
  }

  std::vector<int64_t> checked_prompt(std::vector<int64_t> ids, size_t index) const {
    if (ids.empty()) bad_request(fmt::format("prompt {} encodes to no tokens", index));
    const int64_t context = model.arch().max_positions;
    if (context > 0 && static_cast<int64_t>(ids.size()) >= context)
      bad_request(fmt::format("prompt {} has {} tokens; the model's context is {} tokens", index, ids.size(), context));
    return ids;
  }

  // Shared by completions and chat: queue, then answer in one piece or as server-sent events.
  void generate(const std::string& request_model, const std::string& task, std::vector<std::vector<int64_t>> prompts,
                const SamplingRequest& sampling, bool chat, httplib::Response& res) {
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::Generate;
    job->generation = generation_options(sampling);
    int64_t prompt_tokens = 0;
    for (auto& p : prompts) {
      prompt_tokens += static_cast<int64_t>(p.size());
      job->prompts.push_back({task, std::move(p)});
    }
    const std::string id = next_request_id(chat ? "chatcmpl" : "cmpl");
    const int64_t created = unix_time();
    const char* object = chat ? "chat.completion" : "text_completion";
    auto choice_json = [&](size_t index, const GeneratedText& t) {
      json c = {{"index", index}, {"finish_reason", t.finish_reason}};
      if (chat) c["message"] = {{"role", "assistant"}, {"content", t.text}};
      else c["text"] = t.text, c["logprobs"] = nullptr;
      return c;
    };
    if (!sampling.stream) {
      JobResult result = submit_and_wait(job);
      int64_t completion = 0;
      json choices = json::array();
      for (size_t i = 0; i < result.texts.size(); ++i) {
        completion += static_cast<int64_t>(result.texts[i].token_ids.size());
        choices.push_back(choice_json(i, result.texts[i]));
      }
      metrics.tokens(prompt_tokens, completion);
      send_json(res, 200, {{"id", id}, {"object", object}, {"created", created}, {"model", request_model},
                           {"choices", choices},
                           {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion},
                                      {"total_tokens", prompt_tokens + completion}}}});
      return;
    }
    // Streaming: the worker appends text pieces; this connection's thread writes them as events.
    struct Channel {
      std::mutex mutex;
      std::condition_variable ready;
      std::vector<std::string> pieces;
    };
    auto channel = std::make_shared<Channel>();
    job->on_text = [channel](size_t, const std::string& piece) {
      {
        std::lock_guard lock(channel->mutex);
        channel->pieces.push_back(piece);
      }
      channel->ready.notify_one();
    };
    auto result = std::make_shared<std::future<JobResult>>(job->done.get_future());
    if (!batcher.submit(job)) throw HttpError(503, "server_busy", "the server is at capacity; retry shortly");
    const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
    auto chunk = [=](const json& delta_or_text, const json& finish) {
      json c = {{"index", 0}, {"finish_reason", finish}};
      if (chat) c["delta"] = delta_or_text;
      else c["text"] = delta_or_text, c["logprobs"] = nullptr;
      return json{{"id", id}, {"object", chunk_object}, {"created", created}, {"model", request_model}, {"choices", {c}}};
    };
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.request_timeout_s));
    auto started = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        "text/event-stream",
        [=, this](size_t, httplib::DataSink& sink) {
          if (!*started) {
            *started = true;
            if (chat) {
              const std::string first = sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
              if (!sink.write(first.data(), first.size())) return job->cancelled = true, false;
            }
          }
          while (true) {
            std::vector<std::string> pieces;
            {
              std::unique_lock lock(channel->mutex);
              channel->ready.wait_for(lock, std::chrono::milliseconds(20), [&] { return !channel->pieces.empty(); });
              pieces.swap(channel->pieces);
            }
            for (auto& p : pieces) {
              const std::string event = sse(chunk(chat ? json{{"content", p}} : json(p), nullptr));
              if (!sink.write(event.data(), event.size())) return job->cancelled = true, false;
            }
            if (!pieces.empty()) continue;
            if (result->wait_for(std::chrono::seconds(0)) == std::future_status::ready) break;
            if (Clock::now() > deadline) {
              job->cancelled = true;
              const std::string event = sse(error_body(504, "timeout", "the request took too long"));
              sink.write(event.data(), event.size());
              sink.done();
              return true;
            }
          }
          std::string tail;
          try {
            JobResult r = result->get();
            const GeneratedText& t = r.texts.at(0);
            metrics.tokens(prompt_tokens, static_cast<int64_t>(t.token_ids.size()));
            tail = sse(chunk(chat ? json::object() : json(""), t.finish_reason));
          } catch (const std::exception& e) {
            tail = sse(error_body(400, "invalid_request_error", e.what()));
          }
          tail += "data: [DONE]\n\n";
          sink.write(tail.data(), tail.size());
          sink.done();
          return true;
        });
  }

  void completions(const json& body, httplib::Response& res) {
    const CompletionRequest r = parse_completion(body);
    if (!model.causal()) bad_request("completions need a decoder base model");
    const std::string task = resolve(r.model);
    std::vector<std::vector<int64_t>> prompts;
    tok::EncodeOptions encode;
    encode.truncation = tok::Truncation::None;
    for (size_t i = 0; i < r.prompts.size(); ++i)
      prompts.push_back(checked_prompt(model.tokenizer().encode(r.prompts[i], std::nullopt, encode).ids, i));
    generate(r.model, task, std::move(prompts), r.sampling, /*chat=*/false, res);
  }

  void chat(const json& body, httplib::Response& res) {
    const ChatRequest r = parse_chat(body);
    if (!model.causal()) bad_request("chat completions need a decoder base model");
    const std::string task = resolve(r.model);
    if (model.chat_template().empty()) bad_request("the base model has no chat template; use /v1/completions");
    std::vector<std::vector<int64_t>> prompts;
    prompts.push_back(checked_prompt(encode_chat(model.tokenizer(), model.chat_template(), r.messages), 0));
    generate(r.model, task, std::move(prompts), r.sampling, /*chat=*/true, res);
  }
};

Server::Server(MultiTaskModel& model, ServerOptions options) : impl_(std::make_unique<Impl>(model, std::move(options))) {}

Server::~Server() {
  stop();
  impl_->batcher.stop();
}

int Server::bind() {
  const auto& o = impl_->options;
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host);
    if (impl_->port < 0) fail("cannot bind {} (any port)", o.host);
  } else {
    if (!impl_->http.bind_to_port(o.host, o.port)) fail("cannot bind {}:{} (in use, or not an address of this machine)", o.host, o.port);
    impl_->port = o.port;
  }
  impl_->http.widen_backlog(1024);
  return impl_->port;
}

void Server::run() {
  if (impl_->port < 0) bind();
  // httplib ignores stop() before its loop runs: a stop that comes that early is repeated once it does.
  std::atomic<bool> listening_done{false};
  std::thread late_stop([this, &listening_done] {
    while (!impl_->http.is_running() && !listening_done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (impl_->stop_requested) impl_->http.stop();
  });
  if (!impl_->stop_requested) impl_->http.listen_after_bind();
  listening_done = true;
  late_stop.join();
  impl_->batcher.stop();  // every request was answered: the worker has nothing left to do
}

void Server::stop() {
  impl_->stop_requested = true;
  impl_->batcher.drain();  // requests in flight need not wait for company any more
  impl_->http.stop();
}

int Server::port() const { return impl_->port; }

}  // namespace peft::serve
