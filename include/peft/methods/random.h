#pragma once
// The methods' own random choices in training (AdaMix's expert routes, diff pruning's gate noise)
// come from this generator rather than torch's default one, which dropout uses. Data-parallel ranks
// seed it alike, so that every rank routes and gates a step the same way (as one process with the
// whole batch would), while their dropout masks differ. Checkpoints save it.
#include <cstdint>

#include <ATen/core/Generator.h>

namespace peft {

at::Generator& method_generator();
void seed_method_generator(uint64_t seed);

}  // namespace peft
