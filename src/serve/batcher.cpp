#include "batcher.h"

#include "peft/error.h"

namespace peft::serve {

Batcher::Batcher(MultiTaskModel& model, Metrics& metrics, size_t max_batch_rows, double max_wait_ms,
                 size_t max_queue_rows)
    : model_(model),
      metrics_(metrics),
      max_batch_rows_(std::max<size_t>(1, max_batch_rows)),
      max_queue_rows_(max_queue_rows),
      max_wait_(static_cast<int64_t>(max_wait_ms * 1000)) {
  worker_ = std::thread([this] { work(); });
}

Batcher::~Batcher() { stop(); }

bool Batcher::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (queued_rows_ > 0 && queued_rows_ + job->size() > max_queue_rows_) return false;
    job->queued = std::chrono::steady_clock::now();
    queue_.push_back(job);
    queued_rows_ += job->size();
  }
  wake_.notify_one();
  return true;
}

size_t Batcher::queued_rows() const {
  std::lock_guard lock(mutex_);
  return queued_rows_;
}

void Batcher::drain() {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
  }
  wake_.notify_all();
}

void Batcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::vector<std::shared_ptr<Job>> Batcher::next_batch(std::unique_lock<std::mutex>& lock) {
  wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
  if (queue_.empty()) return {};
  // Give other clients up to max_wait after the oldest job to join its batch.
  const auto deadline = queue_.front()->queued + max_wait_;
  wake_.wait_until(lock, deadline, [&] { return stopping_ || draining_ || queued_rows_ >= max_batch_rows_; });
  const Job& first = *queue_.front();
  std::vector<std::shared_ptr<Job>> batch;
  size_t rows = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    const Job& j = **it;
    const bool fits = batch.empty() || rows + j.size() <= max_batch_rows_;
    if (j.kind == first.kind && j.batch_key == first.batch_key && fits) {
      rows += j.size();
      queued_rows_ -= j.size();
      batch.push_back(*it);
      it = queue_.erase(it);
      if (rows >= max_batch_rows_) break;
    } else {
      ++it;
    }
  }
  return batch;
}

void Batcher::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    auto batch = next_batch(lock);
    if (batch.empty()) break;  // stopping with nothing queued
    lock.unlock();
    std::vector<std::shared_ptr<Job>> live;
    for (auto& j : batch) {
      if (j->cancelled) j->done.set_exception(std::make_exception_ptr(Error("request cancelled")));
      else live.push_back(j);
    }
    if (!live.empty()) run(live);
    lock.lock();
  }
}

JobResult Batcher::run_together(const std::vector<std::shared_ptr<Job>>& jobs) {
  JobResult all;
  const Job::Kind kind = jobs.front()->kind;
  if (kind == Job::Kind::Generate) {
    std::vector<PromptRow> prompts;
    std::vector<std::pair<Job*, size_t>> owner;  // batch row -> (job, its row)
    for (auto& j : jobs)
      for (size_t i = 0; i < j->prompts.size(); ++i) {
        prompts.push_back(j->prompts[i]);
        owner.emplace_back(j.get(), i);
      }
    metrics_.batch(prompts.size());
    TextCallback on_text = [&](size_t row, const std::string& piece) {
      auto [job, i] = owner[row];
      if (job->on_text) job->on_text(i, piece);
    };
    TextGenerationOptions options = jobs.front()->generation;
    options.abandoned = [&](size_t row) { return owner[row].first->cancelled.load(); };
    all.texts = model_.generate(prompts, options, on_text);
    return all;
  }
  std::vector<TaskRow> rows;
  for (auto& j : jobs) rows.insert(rows.end(), j->rows.begin(), j->rows.end());
  metrics_.batch(rows.size());
  if (kind == Job::Kind::Classify) all.classes = model_.classify(rows);
  else all.vectors = model_.embed(rows);
  return all;
}

void Batcher::run(const std::vector<std::shared_ptr<Job>>& jobs) {
  JobResult all;
  try {
    all = run_together(jobs);
  } catch (...) {
    if (jobs.size() == 1) {
      jobs.front()->done.set_exception(std::current_exception());
      return;
    }
    for (auto& j : jobs) run({j});  // find the job at fault; the others still get their answers
    return;
  }
  size_t at = 0;
  for (auto& j : jobs) {
    JobResult mine;
    const auto take = [&](auto& from, auto& to) {
      if (from.empty()) return;
      to.assign(std::make_move_iterator(from.begin() + static_cast<std::ptrdiff_t>(at)),
                std::make_move_iterator(from.begin() + static_cast<std::ptrdiff_t>(at + j->size())));
    };
    take(all.classes, mine.classes);
    take(all.vectors, mine.vectors);
    take(all.texts, mine.texts);
    at += j->size();
    j->done.set_value(std::move(mine));
  }
}

}  // namespace peft::serve
