#pragma once
// CPU loops behind gated_diff (hard_concrete.cpp): theta + z * w and the expected L0 in one pass, and
// its gradients, with the noise from a hash of (seed, index) so that nothing but z is stored.
#include <cstdint>

#include "peft/methods/hard_concrete.h"

namespace peft::detail {

// u in (0, 1) for entry i: the top 24 bits of splitmix64(seed, i), centred in their bucket.
inline float hash_uniform_bits(uint64_t seed, int64_t i) {
  uint64_t x = seed + 0x9E3779B97F4A7C15ULL * (static_cast<uint64_t>(i) + 1);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<float>(static_cast<int32_t>(x >> 40));  // < 2^24: exact in float, and vectorises
}

template <typename T>
inline T hash_u(uint64_t seed, int64_t i) {
  return (static_cast<T>(hash_uniform_bits(seed, i)) + T(0.5)) * T(1.0 / 16777216.0);
}

// out = theta + z * w and z for entries [0, n); returns the sum of P(z != 0). T is float or double.
template <typename T>
double gated_forward_cpu(const T* theta, const T* w, const T* log_alpha, T* out, T* z, int64_t n, uint64_t seed,
                         const HardConcrete& hc);

// gw = g z; gla = g w dz/dlog_alpha + g_l0 dP(z != 0)/dlog_alpha. g may be null (no gradient reached out).
template <typename T>
void gated_backward_cpu(const T* g, const T* w, const T* log_alpha, const T* z, T* gw, T* gla, int64_t n,
                        double g_l0, const HardConcrete& hc);

}  // namespace peft::detail
