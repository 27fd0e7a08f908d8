#include "batcher.h"

#include <functional>
#include <map>

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
    if (j.kind == first.kind && fits) {
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
    if (!live.empty() && live.front()->kind == Job::Kind::Generate) decode(live);
    else if (!live.empty()) run(live);
    lock.lock();
  }
}

JobResult Batcher::run_together(const std::vector<std::shared_ptr<Job>>& jobs) {
  JobResult all;
  const Job::Kind kind = jobs.front()->kind;
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

std::vector<std::shared_ptr<Job>> Batcher::joiners(size_t rows) {
  std::vector<std::shared_ptr<Job>> out;
  std::lock_guard lock(mutex_);
  for (auto it = queue_.begin(); it != queue_.end() && rows > 0;) {
    Job& j = **it;
    if (j.kind != Job::Kind::Generate || j.size() > rows) {
      ++it;
      continue;
    }
    rows -= j.size();
    queued_rows_ -= j.size();
    out.push_back(*it);
    it = queue_.erase(it);
  }
  return out;
}

void Batcher::decode(const std::vector<std::shared_ptr<Job>>& first) {
  // Each job's answers collect here; its rows are named row_base + i in the decoding batch.
  struct Running {
    std::shared_ptr<Job> job;
    std::vector<GeneratedText> texts;
    size_t left = 0;
    bool answered = false;
  };
  std::map<uint64_t, std::pair<std::shared_ptr<Running>, size_t>> owner;  // row -> (job, its row)
  uint64_t next_row = 0;
  const auto fail_job = [&](Running& r, std::exception_ptr error) {
    if (r.answered) return;
    r.answered = true;
    r.job->done.set_exception(error);
  };
  const TextDecodeSession::OnText on_text = [&](uint64_t row, const std::string& piece) {
    auto& [running, i] = owner.at(row);
    if (running->job->on_text) running->job->on_text(i, piece);
  };
  const TextDecodeSession::OnDone on_done = [&](uint64_t row, GeneratedText text) {
    auto it = owner.find(row);
    auto [running, i] = it->second;
    owner.erase(it);
    running->texts[i] = std::move(text);
    if (--running->left == 0 && !running->answered) {
      running->answered = true;
      JobResult result;
      result.texts = std::move(running->texts);
      running->job->done.set_value(std::move(result));
    }
  };
  std::unique_ptr<MultiTaskModel::Decoding> decoding;
  try {
    decoding = model_.start_decoding();
  } catch (...) {
    for (auto& j : first) j->done.set_exception(std::current_exception());
    return;
  }
  // Joins jobs with one prefill; if that fails, each job alone, so that only the job at fault fails.
  std::function<void(const std::vector<std::shared_ptr<Job>>&)> join = [&](const std::vector<std::shared_ptr<Job>>& jobs) {
    std::vector<TextDecodeRow> rows;
    std::vector<uint64_t> ids;
    for (auto& j : jobs) {
      if (j->size() == 0) {
        j->done.set_value(JobResult{});
        continue;
      }
      auto running = std::make_shared<Running>();
      running->job = j;
      running->texts.resize(j->size());
      running->left = j->size();
      // Aliases the job: its options live as long as it does.
      const std::shared_ptr<const TextGenerationOptions> options(j, &j->generation);
      for (size_t i = 0; i < j->prompts.size(); ++i) {
        owner[next_row] = {running, i};
        ids.push_back(next_row);
        rows.push_back({next_row++, j->prompts[i].prompt, j->prompts[i].task, options});
      }
    }
    if (rows.empty()) return;
    try {
      decoding->add(rows, on_text, on_done);
    } catch (...) {
      for (uint64_t id : ids) owner.erase(id);
      if (jobs.size() == 1) {
        jobs.front()->done.set_exception(std::current_exception());
        return;
      }
      for (auto& j : jobs) join({j});
    }
  };
  join(first);
  while (!decoding->empty()) {
    // Rows of requests whose clients went away leave before the step.
    std::vector<uint64_t> gone;
    for (auto& [row, slot] : owner)
      if (slot.first->job->cancelled) gone.push_back(row);
    for (uint64_t row : gone) {
      decoding->remove(row);
      fail_job(*owner.at(row).first, std::make_exception_ptr(Error("request cancelled")));
      owner.erase(row);
    }
    if (decoding->empty()) break;
    metrics_.batch(decoding->size());
    try {
      decoding->step(on_text, on_done);
    } catch (...) {
      for (auto& [row, slot] : owner) fail_job(*slot.first, std::current_exception());
      return;
    }
    if (decoding->size() < max_batch_rows_) {
      auto newcomers = joiners(max_batch_rows_ - decoding->size());
      std::vector<std::shared_ptr<Job>> live;
      for (auto& j : newcomers) {
        if (j->cancelled) j->done.set_exception(std::make_exception_ptr(Error("request cancelled")));
        else live.push_back(j);
      }
      if (!live.empty()) join(live);
    }
  }
}

}  // namespace peft::serve
