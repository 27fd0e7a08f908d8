#pragma once
// Dynamic batching for `peft serve` (internal to src/serve): HTTP threads queue jobs, one worker
// thread runs them on the model in batches. After the first job arrives it waits up to max_wait for
// more, then takes queued jobs of the same kind up to max_batch_rows rows and runs them as one
// mixed-task batch. A batch that fails is retried job by job, so one bad request cannot fail the
// others. Generation is batched continuously: between decoding steps, queued generation jobs join
// the running batch while it has room, and finished rows leave it (each job keeps its own options).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "metrics.h"
#include "peft/serve/multi_task.h"

namespace peft::serve {

struct JobResult {
  std::vector<Classification> classes;
  std::vector<std::vector<float>> vectors;
  std::vector<GeneratedText> texts;
};

struct Job {
  enum class Kind { Classify, Embed, Generate };
  Kind kind = Kind::Classify;
  std::vector<TaskRow> rows;        // classify, embed
  std::vector<PromptRow> prompts;   // generate
  TextGenerationOptions generation;
  TextCallback on_text;             // generate: streamed text of the job's row i
  std::promise<JobResult> done;
  std::atomic<bool> cancelled{false};  // the client gave up: skip it if not started
  std::chrono::steady_clock::time_point queued;
  size_t size() const { return kind == Kind::Generate ? prompts.size() : rows.size(); }
};

class Batcher {
 public:
  Batcher(MultiTaskModel& model, Metrics& metrics, size_t max_batch_rows, double max_wait_ms, size_t max_queue_rows);
  ~Batcher();
  // Queues the job; false (job untouched) when the queue holds max_queue_rows rows already.
  bool submit(const std::shared_ptr<Job>& job);
  size_t queued_rows() const;
  // Runs what is queued, then ends the worker.
  void stop();
  // From now on batches run without waiting for more requests (shutting down).
  void drain();

 private:
  void work();
  std::vector<std::shared_ptr<Job>> next_batch(std::unique_lock<std::mutex>& lock);
  void run(const std::vector<std::shared_ptr<Job>>& jobs);
  JobResult run_together(const std::vector<std::shared_ptr<Job>>& jobs);
  // Continuous batching of generation jobs until none is left running or queued.
  void decode(const std::vector<std::shared_ptr<Job>>& jobs);
  // Queued generation jobs of at most `rows` rows in all, oldest first.
  std::vector<std::shared_ptr<Job>> joiners(size_t rows);

  MultiTaskModel& model_;
  Metrics& metrics_;
  const size_t max_batch_rows_, max_queue_rows_;
  const std::chrono::microseconds max_wait_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t queued_rows_ = 0;
  bool stopping_ = false, draining_ = false;
  std::thread worker_;
};

}  // namespace peft::serve
