// peft serve over loopback: many concurrent clients over mixed tasks get exactly the single-request
// results; every kind of bad request gets its JSON error while the others keep being served; slow and
// vanishing clients disturb no one; task load/unload over HTTP; graceful stop with requests in flight.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include <ATen/Parallel.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "serve/api.h"
#include "cli_runner.h"
#include "multi_task_fixtures.h"
#include "peft/serve/server.h"
#include "test_methods_util.h"

namespace {

using nlohmann::json;
using namespace peft::test;

// A server on a free loopback port, running on its own thread for the test's lifetime.
struct RunningServer {
  peft::serve::MultiTaskModel model;
  std::unique_ptr<peft::serve::Server> server;
  std::thread thread;
  int port = 0;

  explicit RunningServer(peft::serve::ServerOptions options = {}) : model(tiny_bert_with_vocab().string()) {
    options.port = 0;
    if (options.model_name.empty()) options.model_name = "tiny-bert";
    server = std::make_unique<peft::serve::Server>(model, options);
    port = server->bind();
    thread = std::thread([this] { server->run(); });
  }
  ~RunningServer() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
};

// A raw TCP connection to the server (for clients that misbehave).
int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

json post(const httplib::Client& c_in, const std::string& path, const json& body, int expect = 200) {
  auto& c = const_cast<httplib::Client&>(c_in);
  auto res = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(res) << path;
  if (!res) return {};
  EXPECT_EQ(res->status, expect) << path << " " << res->body;
  return json::parse(res->body);
}

class Server : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dirs()["lora"] = make_adapter_task("srv_lora", "lora:r=4,lora_dropout=0", 2, 1);
    dirs()["prefix"] = make_adapter_task("srv_prefix", "prefix:num_virtual_tokens=3,prefix_projection=false", 3, 2);
    dirs()["houlsby"] = make_adapter_task("srv_houlsby", "houlsby:r=4,init=lora", 2, 3);
    dirs()["ia3"] = make_adapter_task("srv_ia3", "ia3", 2, 4);
    dirs()["diff"] = make_diff_task("srv_diff", 2, 5);
  }
  static std::map<std::string, fs::path>& dirs() {
    static std::map<std::string, fs::path> d;
    return d;
  }
  static void load_all(RunningServer& s) {
    for (auto& [name, dir] : dirs()) s.model.load_task(name, dir.string());
  }
};

TEST_F(Server, ConcurrentClientsOverMixedTasksGetTheSingleRequestResults) {
  peft::serve::ServerOptions o;
  o.max_wait_ms = 2;
  RunningServer s(o);
  load_all(s);
  // The expected answers, computed by the single-task path.
  std::map<std::string, std::vector<std::vector<double>>> expected;
  for (auto& [name, dir] : dirs()) expected[name] = alone(dir, kInputs);
  std::vector<std::string> tasks;
  for (auto& [name, dir] : dirs()) tasks.push_back(name);

  constexpr int kClients = 8, kRequests = 25;
  std::atomic<int> errors{0}, checked{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", s.port);
      client.set_read_timeout(60, 0);
      for (int r = 0; r < kRequests; ++r) {
        const std::string& task = tasks[static_cast<size_t>(c + r) % tasks.size()];
        const size_t first = static_cast<size_t>(c * 7 + r) % kInputs.size();
        json input = json::array();
        std::vector<size_t> which;
        for (size_t k = 0; k < 1 + static_cast<size_t>(r % 3); ++k) {
          const auto& in = kInputs[(first + k) % kInputs.size()];
          input.push_back(in.pair ? json::array({in.text, *in.pair}) : json(in.text));
          which.push_back((first + k) % kInputs.size());
        }
        auto res = client.Post("/v1/classify", json{{"model", task}, {"input", input}}.dump(), "application/json");
        if (!res || res->status != 200) {
          ++errors;
          continue;
        }
        const json body = json::parse(res->body);
        for (size_t k = 0; k < which.size(); ++k) {
          const auto& want = expected[task][which[k]];
          const json& p = body["data"][k]["probabilities"];
          for (size_t l = 0; l < want.size(); ++l)
            if (std::abs(p[fmt::format("label{}", l)].get<double>() - want[l]) > 2e-6) ++errors;
          ++checked;
        }
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(checked.load(), kClients * kRequests);
  // Batches really mixed requests: the histogram saw batches of more than one row.
  auto metrics = s.client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("peft_batch_rows_count"), std::string::npos);
  EXPECT_NE(metrics->body.find("peft_requests_total{endpoint=\"/v1/classify\",status=\"200\"} 200"), std::string::npos)
      << metrics->body.substr(0, 600);
}

TEST_F(Server, EmbeddingsMatchTheLibraryAndModelsListsTheTasks) {
  RunningServer s;
  load_all(s);
  const json base = post(s.client(), "/v1/embeddings", {{"model", "tiny-bert"}, {"input", {"the movie was great", "fun"}}});
  const auto want = s.model.embed({{"", kInputs[0]}, {"", kInputs[2]}});
  ASSERT_EQ(base["data"].size(), 2u);
  EXPECT_EQ(base["object"], "list");
  EXPECT_EQ(base["data"][1]["index"], 1);
  for (size_t k = 0; k < want[0].size(); ++k) EXPECT_FLOAT_EQ(base["data"][0]["embedding"][k].get<float>(), want[0][k]);
  EXPECT_GT(base["usage"]["prompt_tokens"].get<int>(), 2);
  // The same vectors as `peft embed`.
  const fs::path lines = temp_dir("embed_input.txt");
  std::ofstream(lines) << "the movie was great\nfun\n";
  const CliRun cli = run_peft(fmt::format("embed '{}' -i '{}'", tiny_bert_with_vocab().string(), lines.string()));
  ASSERT_EQ(cli.status, 0) << cli.err;
  std::istringstream cli_out(cli.out);
  std::string line;
  for (size_t i = 0; std::getline(cli_out, line); ++i) {
    const json row = json::parse(line);
    ASSERT_EQ(row["embedding"].size(), base["data"][i]["embedding"].size());
    for (size_t k = 0; k < row["embedding"].size(); ++k)
      EXPECT_NEAR(row["embedding"][k].get<double>(), base["data"][i]["embedding"][k].get<double>(), 1e-6);
  }
  const json lora = post(s.client(), "/v1/embeddings", {{"model", "lora"}, {"input", "the movie was great"}, {"encoding_format", "base64"}});
  const auto lora_want = s.model.embed({{"lora", kInputs[0]}});
  EXPECT_EQ(lora["data"][0]["embedding"], peft::serve::base64_floats(lora_want[0]));

  // The base by a hub-style name with the same last component.
  post(s.client(), "/v1/embeddings", {{"model", "sentence-transformers/tiny-bert"}, {"input", "fun"}});
  auto models = s.client().Get("/v1/models");
  ASSERT_TRUE(models);
  const json m = json::parse(models->body);
  std::set<std::string> ids;
  for (auto& e : m["data"]) ids.insert(e["id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"tiny-bert", "lora", "prefix", "houlsby", "ia3", "diff"}));
}

TEST_F(Server, BadRequestsGetJsonErrorsAndTheServerKeepsServing) {
  peft::serve::ServerOptions o;
  o.max_body_bytes = 4096;
  o.reject_long_inputs = true;
  RunningServer s(o);
  load_all(s);
  auto c = s.client();
  auto expect_error = [&](httplib::Result res, int status, const std::string& type) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << res->body;
    EXPECT_EQ(j["error"]["type"], type) << res->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
  };
  expect_error(c.Post("/v1/classify", "{\"model\": \"lora\", \"input\": [", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", "[1, 2]", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", R"({"model": 3, "input": "x"})", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", R"({"model": "lora", "input": [1]})", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", R"({"model": "lora", "input": []})", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", R"({"model": "lora"})", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", R"({"model": "nope", "input": "x"})", "application/json"), 404, "not_found_error");
  expect_error(c.Post("/v1/classify", R"({"model": "tiny-bert", "input": "x"})", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/completions", R"({"model": "tiny-bert", "prompt": "x"})", "application/json"), 400, "invalid_request_error");
  expect_error(c.Post("/v1/classify", R"({"model": "lora", "input": "x"})", "application/xml"), 415, "invalid_request_error");
  expect_error(c.Post("/v1/classify", std::string(8192, ' '), "application/json"), 413, "invalid_request_error");
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "the movie ";
  expect_error(c.Post("/v1/classify", json{{"model", "lora"}, {"input", long_text}}.dump(), "application/json"), 400,
               "invalid_request_error");
  expect_error(c.Get("/v1/nothing"), 404, "not_found_error");
  expect_error(c.Delete("/v1/tasks/nope"), 404, "not_found_error");
  // Task management: load twice, a missing folder, a folder that is not a task.
  expect_error(c.Post("/v1/tasks", json{{"name", "lora"}, {"path", dirs()["ia3"].string()}}.dump(), "application/json"), 409,
               "invalid_request_error");
  expect_error(c.Post("/v1/tasks", json{{"name", "x"}, {"path", "/no/such/dir"}}.dump(), "application/json"), 404, "not_found_error");
  expect_error(c.Post("/v1/tasks", json{{"name", "x"}, {"path", tiny_bert_with_vocab().string()}}.dump(), "application/json"), 400,
               "invalid_request_error");
  // Still serving, with the right answer.
  const json ok = post(c, "/v1/classify", {{"model", "lora"}, {"input", {kInputs[0].text}}});
  EXPECT_NEAR(ok["data"][0]["probabilities"]["label0"].get<double>(), alone(dirs()["lora"], {kInputs[0]})[0][0], 2e-6);
}

TEST_F(Server, TasksLoadAndUnloadOverHttpWhileServing) {
  RunningServer s;
  auto c = s.client();
  const json loaded = post(c, "/v1/tasks", {{"name", "t1"}, {"path", dirs()["houlsby"].string()}}, 201);
  EXPECT_EQ(loaded["id"], "t1");
  EXPECT_GT(loaded["bytes"].get<int64_t>(), 0);
  const json r = post(c, "/v1/classify", {{"model", "t1"}, {"input", kInputs[1].text}});
  EXPECT_NEAR(r["data"][0]["probabilities"]["label1"].get<double>(), alone(dirs()["houlsby"], {kInputs[1]})[0][1], 2e-6);
  auto del = c.Delete("/v1/tasks/t1");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  post(c, "/v1/classify", {{"model", "t1"}, {"input", "x"}}, 404);
}

TEST_F(Server, ApiKeyIsRequiredExceptForHealth) {
  peft::serve::ServerOptions o;
  o.api_key = "sekrit";
  RunningServer s(o);
  load_all(s);
  auto c = s.client();
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto denied = c.Get("/v1/models");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(json::parse(denied->body)["error"]["type"], "authentication_error");
  c.set_bearer_token_auth("wrong");
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  c.set_bearer_token_auth("sekrit");
  EXPECT_EQ(c.Get("/v1/models")->status, 200);
}

TEST_F(Server, AFullQueueAnswers503WithRetryAfter) {
  peft::serve::ServerOptions o;
  o.max_wait_ms = 3000;  // the first batch waits, so the queue fills
  o.max_queue_rows = 2;
  RunningServer s(o);
  load_all(s);
  std::vector<std::future<std::pair<int, std::string>>> answers;
  for (int i = 0; i < 6; ++i)
    answers.push_back(std::async(std::launch::async, [&] {
      auto c = s.client();
      auto res = c.Post("/v1/classify", json{{"model", "lora"}, {"input", "fun"}}.dump(), "application/json");
      return std::make_pair(res ? res->status : -1, res ? res->get_header_value("Retry-After") : "");
    }));
  int ok = 0, busy = 0;
  for (auto& a : answers) {
    auto [status, retry] = a.get();
    if (status == 200) ++ok;
    if (status == 503) {
      ++busy;
      EXPECT_EQ(retry, "1");
    }
  }
  EXPECT_EQ(ok + busy, 6);
  EXPECT_GE(busy, 1);
  EXPECT_GE(ok, 1);
}

TEST_F(Server, SlowAndVanishingClientsDoNotDisturbOthers) {
  peft::serve::ServerOptions o;
  o.read_timeout_s = 1;
  o.http_threads = 4;
  RunningServer s(o);
  load_all(s);
  // Slowloris: connections that send half a request and then nothing, more than there are threads.
  std::vector<int> sockets;
  for (int i = 0; i < 6; ++i) {
    const int fd = connect_loopback(s.port);
    const std::string partial = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mod";
    ASSERT_GT(::send(fd, partial.data(), partial.size(), 0), 0);
    sockets.push_back(fd);
  }
  // A client that disconnects right after sending its request.
  {
    const int fd = connect_loopback(s.port);
    const std::string body = json{{"model", "lora"}, {"input", "fun"}}.dump();
    const std::string request = fmt::format(
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.size(), body);
    ::send(fd, request.data(), request.size(), 0);
    ::close(fd);
  }
  // Everyone else is still answered (the slow connections time out and free their threads).
  const json r = post(s.client(), "/v1/classify",
                      {{"model", "prefix"}, {"input", json::array({json::array({kInputs[3].text, *kInputs[3].pair})})}});
  EXPECT_NEAR(r["data"][0]["probabilities"]["label2"].get<double>(), alone(dirs()["prefix"], {kInputs[3]})[0][2], 2e-6);
  for (int fd : sockets) ::close(fd);
}

TEST_F(Server, StopAnswersRequestsInFlight) {
  peft::serve::ServerOptions o;
  o.max_wait_ms = 5000;  // the request is still queued when stop() comes
  auto s = std::make_unique<RunningServer>(o);
  load_all(*s);
  auto answer = std::async(std::launch::async, [&] {
    auto c = s->client();
    auto res = c.Post("/v1/classify", json{{"model", "ia3"}, {"input", "fun"}}.dump(), "application/json");
    return res ? res->status : -1;
  });
  // Wait until the request is queued (the metrics show it), then stop.
  for (int i = 0; i < 3000; ++i) {
    auto m = s->client().Get("/metrics");
    if (m && m->body.find("peft_queue_depth 1") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  s.reset();  // stop(), then run() returns once the request is answered
  EXPECT_EQ(answer.get(), 200);
}

TEST(ServeCli, SigtermStopsTheServerWithExitCodeZeroAndBadTasksAreOneLineErrors) {
  const fs::path model = tiny_bert_with_vocab();
  CliRun bad = run_peft(fmt::format("serve --model '{}' --task broken=/no/such --port 0", model.string()));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("--task broken=/no/such"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  CliRun form = run_peft(fmt::format("serve --model '{}' --task nodir --port 0", model.string()));
  EXPECT_EQ(form.status, 1);
  EXPECT_NE(form.err.find("expected NAME=DIR"), std::string::npos) << form.err;
  // Serve for a moment, then SIGTERM: a clean exit.
  const fs::path err = temp_dir("sigterm.err"), script = temp_dir("sigterm.sh");
  std::ofstream(script) << fmt::format("'{}' serve --model '{}' --port 0 2> '{}' &\npid=$!\nsleep 3\nkill -TERM $pid\nwait $pid\n",
                                       PEFT_CLI_PATH, model.string(), err.string());
  const int raw = std::system(fmt::format("timeout 60 bash '{}'", script.string()).c_str());
  EXPECT_TRUE(WIFEXITED(raw));
  EXPECT_EQ(WEXITSTATUS(raw), 0) << slurp(err);
  EXPECT_NE(slurp(err).find("SIGTERM"), std::string::npos) << slurp(err);
}

// A server on a loopback port for the SmolLM2 tests ("model": "smollm2"), stopped when it goes out of scope.
struct SmolLM2Server {
  explicit SmolLM2Server(peft::serve::MultiTaskModel& model) : server(model, options()) {
    port = server.bind();
    serving = std::thread([this] { server.run(); });
  }
  ~SmolLM2Server() {
    server.stop();
    serving.join();
  }
  static peft::serve::ServerOptions options() {
    peft::serve::ServerOptions o;
    o.port = 0;
    o.model_name = "smollm2";
    return o;
  }
  peft::serve::Server server;
  int port = 0;
  std::thread serving;
};

// Decoders: a streaming client that vanishes mid-stream ends its row (abandoned) and the next client
// gets exactly the greedy continuation the library gives; a chat completion streams OpenAI's chunks.
TEST(ServerDecoder, StreamingClientThatVanishesDoesNotDisturbTheNext) {
  PEFT_REQUIRE_SMOLLM2(gguf);
  peft::serve::MultiTaskModel model(gguf.string());
  SmolLM2Server running(model);
  const int port = running.port;

  const int fd = connect_loopback(port);
  const std::string body = json{{"model", "smollm2"}, {"messages", {{{"role", "user"}, {"content", "Tell a long story"}}}},
                                {"max_tokens", 200}, {"temperature", 0}, {"stream", true}}.dump();
  const std::string request = fmt::format(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      body.size(), body);
  ASSERT_GT(::send(fd, request.data(), request.size(), 0), 0);
  std::string seen;
  char buffer[4096];
  while (seen.find("\"content\":\"") == std::string::npos || seen.find("chat.completion.chunk") == std::string::npos) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    ASSERT_GT(n, 0);
    seen.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_NE(seen.find("text/event-stream"), std::string::npos);
  EXPECT_NE(seen.find("\"role\":\"assistant\""), std::string::npos);
  ::close(fd);  // gone mid-stream

  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const json r = post(c, "/v1/completions", {{"model", "smollm2"}, {"prompt", "The capital of France is"},
                                             {"max_tokens", 8}, {"temperature", 0}});
  peft::TextGenerationOptions g;
  g.generation.max_new_tokens = 8;
  g.generation.stop_token_ids = peft::default_stop_token_ids(model.tokenizer());
  const auto want = model.generate({{"", model.tokenizer().encode("The capital of France is").ids}}, g);
  EXPECT_EQ(r["choices"][0]["text"], want[0].text);
  EXPECT_EQ(r["usage"]["completion_tokens"], want[0].token_ids.size());
}

TEST(ServerDecoder, AbandonedRowsEndAtTheNextStep) {
  PEFT_REQUIRE_SMOLLM2(gguf);
  peft::serve::MultiTaskModel model(gguf.string());
  peft::TextGenerationOptions g;
  g.generation.max_new_tokens = 12;
  g.abandoned = [](size_t row) { return row == 1; };
  const auto ids = model.tokenizer().encode("Once upon a time").ids;
  const auto out = model.generate({{"", ids}, {"", ids}}, g);
  EXPECT_EQ(out[0].token_ids.size(), 12u);
  EXPECT_LE(out[1].token_ids.size(), 1u);
}

// The text of the SSE events received so far (completions: choices[0].text of each chunk).
std::string streamed_text(const std::string& raw, bool* done = nullptr) {
  std::string text;
  for (size_t at = raw.find("data: "); at != std::string::npos; at = raw.find("data: ", at + 6)) {
    const size_t end = raw.find("\n\n", at);
    if (end == std::string::npos) break;
    const std::string data = raw.substr(at + 6, end - at - 6);
    if (data == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    const json chunk = json::parse(data);
    if (chunk.contains("choices")) text += chunk["choices"][0]["text"].get<std::string>();
  }
  return text;
}

// A LoRA task on the SmolLM2 GGUF, its tensors moved off their initial values.
fs::path smollm2_lora_task(const fs::path& gguf) {
  auto lm = peft::load_causal_lm(gguf.string());
  peft::AdaptedModel m(std::static_pointer_cast<peft::Model>(lm));
  lm->eval();
  m.add(peft::make_methods(peft::parse_method_spec("lora:r=4,lora_dropout=0")));
  peft::test::perturb(m, 21);
  const fs::path dir = temp_dir("smollm2-lora-task");
  peft::save_adapter(m, dir.string(), gguf.string());
  peft::data::TaskInfo info;
  info.name = "custom";
  info.causal_lm = true;
  peft::io::write_file_atomically((dir / "task.json").string(), info.to_json().dump(2) + "\n");
  return dir;
}

// Continuous batching: requests that arrive while a long generation runs join its batch between
// decoding steps (the batch-size histogram shows shared steps) instead of waiting for it to end, and
// every request still gets what it gets alone; a seeded request repeats when served alone. The long
// generation's task cannot be unloaded while it runs (409), and can be once it ends.
TEST(ServerDecoder, RequestsJoinARunningGenerationBetweenSteps) {
  PEFT_REQUIRE_SMOLLM2(gguf);
  // One compute thread leaves the other core to the HTTP threads, so that the stream's first piece
  // reaches this client while the long generation still has most of its tokens to go.
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const fs::path task_dir = smollm2_lora_task(gguf);
  peft::serve::MultiTaskModel model(gguf.string());
  model.load_task("counting", task_dir.string());
  // What each request gets alone.
  const std::string long_prompt = "Count to one hundred: 1, 2, 3, 4, 5,";
  peft::TextGenerationOptions g;
  peft::set_stop_and_pad(g.generation, model.tokenizer());
  auto alone = [&](const std::string& task, const std::string& prompt, int64_t max_new) {
    g.generation.max_new_tokens = max_new;
    return model.generate({{task, model.tokenizer().encode(prompt).ids}}, g)[0];
  };
  const peft::GeneratedText long_alone = alone("counting", long_prompt, 64);
  const std::string want_long = long_alone.text;
  const std::string want_short = alone("", "The capital of France is", 4).text;
  ASSERT_EQ(long_alone.token_ids.size(), 64u) << want_long;  // long enough to be joined

  SmolLM2Server running(model);
  const int port = running.port;

  const int fd = connect_loopback(port);
  const std::string body = json{{"model", "counting"}, {"prompt", long_prompt}, {"max_tokens", 64},
                                {"temperature", 0}, {"stream", true}}.dump();
  const std::string request = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      body.size(), body);
  ASSERT_GT(::send(fd, request.data(), request.size(), 0), 0);
  std::string raw;
  char buffer[4096];
  auto receive = [&] {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) raw.append(buffer, static_cast<size_t>(n));
    return n > 0;
  };
  while (streamed_text(raw).empty()) ASSERT_TRUE(receive());
  httplib::Client admin("127.0.0.1", port);
  const auto busy = admin.Delete("/v1/tasks/counting");  // its prompt is being decoded
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 409) << busy->body;

  // While it runs: a greedy request, then a seeded sampled one (one after the other, so that only
  // joining the running generation can make a step decode two requests).
  const json short_request = {{"model", "smollm2"}, {"prompt", "The capital of France is"}, {"max_tokens", 4}, {"temperature", 0}};
  const json seeded_request = {{"model", "smollm2"}, {"prompt", "Once upon a time"}, {"max_tokens", 6},
                               {"temperature", 0.9}, {"seed", 5}};
  auto send = [port](const json& r) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    return post(c, "/v1/completions", r);
  };
  const json shorter = send(short_request);
  const json seeded = send(seeded_request);
  bool done = false;
  while (!done) {
    streamed_text(raw, &done);
    if (!done) ASSERT_TRUE(receive());
  }
  ::close(fd);

  EXPECT_EQ(streamed_text(raw), want_long);
  EXPECT_EQ(shorter["choices"][0]["text"], want_short);
  EXPECT_EQ(send(seeded_request)["choices"][0]["text"], seeded["choices"][0]["text"]);

  httplib::Client c("127.0.0.1", port);
  const auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  auto number_after = [&](const std::string& key) {
    const size_t at = metrics->body.find(key);
    EXPECT_NE(at, std::string::npos) << key;
    return at == std::string::npos ? 0.0 : std::stod(metrics->body.substr(at + key.size()));
  };
  const double steps = number_after("peft_batch_rows_count "), alone_steps = number_after("peft_batch_rows_bucket{le=\"1\"} ");
  EXPECT_GE(steps - alone_steps, 3) << metrics->body;  // steps that decoded two or more requests together
  const auto unloaded = admin.Delete("/v1/tasks/counting");
  ASSERT_TRUE(unloaded);
  EXPECT_EQ(unloaded->status, 200) << unloaded->body;
  at::set_num_threads(threads);
}

}  // namespace
