#pragma once
// The one exception type of the library. Messages name the file, tensor or option at fault, so the
// CLI can print them as a single line.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace peft {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace peft
