#include "methods/gated_diff_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <ATen/Parallel.h>

// The float loops are written so that GCC vectorises them, and are compiled twice on x86-64: for AVX2
// and for the baseline, picked at load time. std::exp does not vectorise, so they use exp_approx.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PEFT_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PEFT_VECTOR_CLONES
#endif

namespace peft::detail {
namespace {

constexpr int64_t kGrain = 32768;  // entries per parallel task
constexpr int64_t kBlock = 1024;   // entries per inner block (noise and partial sums on the stack)

// e^x for x in [-87, 88] (clamped), within 2 ulp of expf: x = k ln 2 + r with ln 2 split in two
// (Cody-Waite), Cephes' degree-6 polynomial for e^r on |r| <= ln 2 / 2, and 2^k built from exponent bits.
inline float exp_approx(float x) {
  x = std::min(88.0f, std::max(-87.0f, x));
  const float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const float r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(kf) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Sum of v[0, n) in 8 float lanes (vectorises; a fixed order, so the result is reproducible), then double.
inline double lane_sum(const float* v, int64_t n) {
  float lanes[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += v[j + l];
  double total = 0;
  for (; j < n; ++j) total += v[j];
  for (float lane : lanes) total += lane;
  return total;
}

// beta = 1 (the default), float. With e = exp(-log_alpha): s = sigmoid(logit(u) + log_alpha) = u / (u + (1 - u) e)
// and P(z != 0) = sigmoid(log_alpha - shift) = 1 / (1 + exp(shift) e): one exp per entry.
PEFT_VECTOR_CLONES
double forward_unit_beta(const float* theta, const float* w, const float* la, float* out, float* z_out,
                         int64_t begin, int64_t end, uint64_t seed, float span, float lo, float exp_shift) {
  float u[kBlock], open[kBlock];
  double total = 0;
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t n = std::min(kBlock, end - b);
    for (int64_t j = 0; j < n; ++j) u[j] = (hash_uniform_bits(seed, b + j) + 0.5f) * (1.0f / 16777216.0f);
    const float* lab = la + b;
    for (int64_t j = 0; j < n; ++j) {
      const float e = exp_approx(-lab[j]);
      const float s = u[j] / (u[j] + (1.0f - u[j]) * e);
      const float z = std::min(1.0f, std::max(0.0f, s * span + lo));
      out[b + j] = theta[b + j] + z * w[b + j];
      z_out[b + j] = z;
      open[j] = 1.0f / (1.0f + exp_shift * e);
    }
    total += lane_sum(open, n);
  }
  return total;
}

// Any beta, float; g non-null. dz/dlog_alpha = (r - l) s (1 - s) / beta inside (0, 1), 0 where clamped.
PEFT_VECTOR_CLONES
void backward_float(const float* g, const float* w, const float* la, const float* z, float* gw, float* gla,
                    int64_t begin, int64_t end, float inv_span, float lo, float factor, float gp, float exp_shift) {
  for (int64_t i = begin; i < end; ++i) {
    const float zi = z[i], gi = g[i];
    gw[i] = gi * zi;
    const float s = (zi - lo) * inv_span;
    const float inside = (zi > 0.0f && zi < 1.0f) ? 1.0f : 0.0f;
    const float p = 1.0f / (1.0f + exp_shift * exp_approx(-la[i]));
    gla[i] = inside * (gi * w[i] * factor * s * (1.0f - s)) + gp * p * (1.0f - p);
  }
}

// The general loops (double, beta != 1, or no incoming gradient), with the library exp and log.
template <typename T>
double forward_generic(const T* theta, const T* w, const T* la, T* out, T* z_out, int64_t begin, int64_t end,
                       uint64_t seed, const HardConcrete& hc) {
  const T inv_beta = T(1 / hc.beta), span = T(hc.r - hc.l), lo = T(hc.l);
  const T shift = T(hc.beta * std::log(-hc.l / hc.r));
  double total = 0;
  for (int64_t i = begin; i < end; ++i) {
    const T u = hash_u<T>(seed, i);
    const T s = T(1) / (T(1) + std::exp(-(std::log(u / (T(1) - u)) + la[i]) * inv_beta));
    const T z = std::min(T(1), std::max(T(0), s * span + lo));
    out[i] = theta[i] + z * w[i];
    z_out[i] = z;
    total += double(T(1) / (T(1) + std::exp(shift - la[i])));
  }
  return total;
}

template <typename T>
void backward_generic(const T* g, const T* w, const T* la, const T* z, T* gw, T* gla, int64_t begin, int64_t end,
                      double g_l0, const HardConcrete& hc) {
  const T inv_span = T(1 / (hc.r - hc.l)), lo = T(hc.l), factor = T((hc.r - hc.l) / hc.beta);
  const T shift = T(hc.beta * std::log(-hc.l / hc.r)), gp = T(g_l0);
  for (int64_t i = begin; i < end; ++i) {
    const T zi = z[i];
    const T gi = g ? g[i] : T(0);
    gw[i] = gi * zi;
    T d = T(0);
    if (zi > T(0) && zi < T(1)) {
      const T s = (zi - lo) * inv_span;
      d = gi * w[i] * factor * s * (T(1) - s);
    }
    if (gp != T(0)) {
      const T p = T(1) / (T(1) + std::exp(shift - la[i]));
      d += gp * p * (T(1) - p);
    }
    gla[i] = d;
  }
}

}  // namespace

template <typename T>
double gated_forward_cpu(const T* theta, const T* w, const T* la, T* out, T* z, int64_t n, uint64_t seed,
                         const HardConcrete& hc) {
  return at::parallel_reduce(
      0, n, kGrain, 0.0,
      [&](int64_t begin, int64_t end, double acc) {
        if constexpr (std::is_same_v<T, float>) {
          if (hc.beta == 1)
            return acc + forward_unit_beta(theta, w, la, out, z, begin, end, seed, float(hc.r - hc.l), float(hc.l),
                                           float(-hc.l / hc.r));  // exp(shift) = -l / r when beta = 1
        }
        return acc + forward_generic<T>(theta, w, la, out, z, begin, end, seed, hc);
      },
      std::plus<double>());
}

template <typename T>
void gated_backward_cpu(const T* g, const T* w, const T* la, const T* z, T* gw, T* gla, int64_t n, double g_l0,
                        const HardConcrete& hc) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) {
      if (g) {
        backward_float(g, w, la, z, gw, gla, begin, end, float(1 / (hc.r - hc.l)), float(hc.l),
                       float((hc.r - hc.l) / hc.beta), float(g_l0), float(std::pow(-hc.l / hc.r, hc.beta)));
        return;
      }
    }
    backward_generic<T>(g, w, la, z, gw, gla, begin, end, g_l0, hc);
  });
}

template double gated_forward_cpu<float>(const float*, const float*, const float*, float*, float*, int64_t, uint64_t,
                                         const HardConcrete&);
template double gated_forward_cpu<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                          uint64_t, const HardConcrete&);
template void gated_backward_cpu<float>(const float*, const float*, const float*, const float*, float*, float*,
                                        int64_t, double, const HardConcrete&);
template void gated_backward_cpu<double>(const double*, const double*, const double*, const double*, double*,
                                         double*, int64_t, double, const HardConcrete&);

}  // namespace peft::detail
