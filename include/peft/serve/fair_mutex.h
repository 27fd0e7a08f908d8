#pragma once
// A mutex granted in the order it was asked for. The decoding loop takes the model's lock for every
// step and asks again at once; with std::mutex it can win every time, so an HTTP thread that wants
// the lock between two steps (to queue a request, list or unload a task) could wait for the whole
// generation. Here it gets the lock after the step that is running.
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace peft::serve {

class FairMutex {
 public:
  void lock() {
    std::unique_lock guard(m_);
    const uint64_t ticket = next_++;
    turn_.wait(guard, [&] { return serving_ == ticket; });
  }
  void unlock() {
    std::lock_guard guard(m_);
    ++serving_;
    turn_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable turn_;
  uint64_t next_ = 0, serving_ = 0;
};

}  // namespace peft::serve
