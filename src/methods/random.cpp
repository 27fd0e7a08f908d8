#include "peft/methods/random.h"

#include <ATen/CPUGeneratorImpl.h>

namespace peft {

at::Generator& method_generator() {
  static at::Generator generator = at::detail::createCPUGenerator(42);
  return generator;
}

void seed_method_generator(uint64_t seed) {
  std::lock_guard<std::mutex> lock(method_generator().mutex());
  method_generator().set_current_seed(seed);
}

}  // namespace peft
