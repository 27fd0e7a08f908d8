// GGUF dequantization. Block layouts are ggml's (ggml-common.h); each formula applies the same
// float32 multiplications and subtractions, in the same order, as gguf-py's quants.py, so the
// results are bit-identical. The inner loops have fixed trip counts and no branches so that the
// compiler vectorises them.
#include "peft/io/gguf_dequant.h"

#include <cstring>

#include "peft/error.h"

// numpy rounds every product and sum; a fused multiply-add would round once. (The products in these
// formulas happen to be exact, so FMA would not change a result today, but keep it that way for
// any formula added later.) The pragmas are scoped to this file, which may share a unity batch.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace peft::io {
namespace gguf_dequant_impl {
namespace {

constexpr int kQK = 256;  // elements per K-quant super-block

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load_u32(const uint8_t* p) { return load_u16(p) | (static_cast<uint32_t>(load_u16(p + 2)) << 16); }
float load_f16(const uint8_t* p) { return f16_to_float(load_u16(p)); }

void dq_f32(const uint8_t* x, float* y, uint64_t n) { std::memcpy(y, x, n * 4); }

void dq_f16(const uint8_t* x, float* y, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) y[i] = load_f16(x + 2 * i);
}

void dq_bf16(const uint8_t* x, float* y, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) y[i] = bits_float(static_cast<uint32_t>(load_u16(x + 2 * i)) << 16);
}

// Q4_0: f16 d, 16 bytes of nibbles; low nibbles are elements 0..15, high nibbles 16..31.
void dq_q4_0(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 18, y += 32) {
    const float d = load_f16(x);
    const uint8_t* qs = x + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
      y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m.
void dq_q4_1(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 20, y += 32) {
    const float d = load_f16(x);
    const float m = load_f16(x + 2);
    const uint8_t* qs = x + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
      y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

// Q5_0: f16 d, u32 of fifth bits (bit j for element j), nibbles as Q4_0; q - 16.
void dq_q5_0(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 22, y += 32) {
    const float d = load_f16(x);
    const uint32_t qh = load_u32(x + 2);
    const uint8_t* qs = x + 6;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

// Q5_1: f16 d, f16 m, u32 of fifth bits, nibbles; x = d * q + m.
void dq_q5_1(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 24, y += 32) {
    const float d = load_f16(x);
    const float m = load_f16(x + 2);
    const uint32_t qh = load_u32(x + 4);
    const uint8_t* qs = x + 8;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

// Q8_0: f16 d, 32 int8.
void dq_q8_0(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 34, y += 32) {
    const float d = load_f16(x);
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 2);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// Q2_K: 16 bytes of (4-bit min << 4 | 4-bit scale) per 16 elements, 64 bytes of 2-bit values, f16 d,
// f16 dmin. Element h*128 + s*32 + l is bits 2s..2s+1 of qs[h*32 + l].
void dq_q2_k(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 84, y += kQK) {
    const uint8_t* scales = x;
    const uint8_t* qs = x + 16;
    const float d = load_f16(x + 80);
    const float dmin = load_f16(x + 82);
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        float* out = y + h * 128 + s * 32;
        const int sub = h * 8 + s * 2;  // two 16-element groups per 32 outputs
        const float dl0 = d * static_cast<float>(scales[sub] & 0x0F), ml0 = dmin * static_cast<float>(scales[sub] >> 4);
        const float dl1 = d * static_cast<float>(scales[sub + 1] & 0x0F),
                    ml1 = dmin * static_cast<float>(scales[sub + 1] >> 4);
        for (int l = 0; l < 16; ++l) out[l] = dl0 * static_cast<float>((qs[h * 32 + l] >> (2 * s)) & 3) - ml0;
        for (int l = 16; l < 32; ++l) out[l] = dl1 * static_cast<float>((qs[h * 32 + l] >> (2 * s)) & 3) - ml1;
      }
    }
  }
}

// Q3_K: 32 bytes of high-bit masks, 64 bytes of 2-bit values, 12 bytes of 6-bit signed scales,
// f16 d. Element e = h*128 + s*32 + l: low bits from qs[h*32 + l] >> 2s, high bit b = e / 32 of
// hmask[l]; a clear high bit subtracts 4.
void dq_q3_k(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 110, y += kQK) {
    const uint8_t* hmask = x;
    const uint8_t* qs = x + 32;
    const uint8_t* sc = x + 96;
    const float d = load_f16(x + 108);
    float dl[16];
    for (int i = 0; i < 16; ++i) {
      const int low = (sc[i % 8] >> (4 * (i / 8))) & 0x0F;
      const int high = (sc[8 + i % 4] >> (2 * (i / 4))) & 0x03;
      dl[i] = d * static_cast<float>(static_cast<int8_t>(low | (high << 4)) - 32);
    }
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const int group = h * 4 + s;  // 32-element group, also the hmask bit
        float* out = y + group * 32;
        for (int l = 0; l < 32; ++l) {
          const int low = (qs[h * 32 + l] >> (2 * s)) & 3;
          const int high = ((hmask[l] >> group) & 1) ^ 1;
          out[l] = dl[group * 2 + l / 16] * static_cast<float>(low - (high << 2));
        }
      }
    }
  }
}

// The 8 pairs of 6-bit (scale, min) of Q4_K/Q5_K, packed in 12 bytes.
void k_scale_min(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 0x3F;
    mn[j] = s[j + 4] & 0x3F;
    sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 0x0F) | ((s[j] >> 2) & 0x30));
    mn[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30));
  }
}

// Q4_K: f16 d, f16 dmin, 12 bytes of scales/mins, 128 bytes of nibbles. Group j = 2i + k of 32
// elements is nibble k of qs[i*32 .. i*32+31]; x = (d * scale) * q - dmin * min.
void dq_q4_k(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 144, y += kQK) {
    const float d = load_f16(x);
    const float dmin = load_f16(x + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(x + 4, sc, mn);
    const uint8_t* qs = x + 16;
    for (int i = 0; i < 4; ++i) {
      for (int k = 0; k < 2; ++k) {
        const int j = 2 * i + k;
        const float dl = d * static_cast<float>(sc[j]);
        const float ml = dmin * static_cast<float>(mn[j]);
        float* out = y + j * 32;
        for (int l = 0; l < 32; ++l) out[l] = dl * static_cast<float>((qs[i * 32 + l] >> (4 * k)) & 0x0F) - ml;
      }
    }
  }
}

// Q5_K: as Q4_K plus 32 bytes of fifth bits: bit j of qh[l] for element l of group j.
void dq_q5_k(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 176, y += kQK) {
    const float d = load_f16(x);
    const float dmin = load_f16(x + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(x + 4, sc, mn);
    const uint8_t* qh = x + 16;
    const uint8_t* qs = x + 48;
    for (int i = 0; i < 4; ++i) {
      for (int k = 0; k < 2; ++k) {
        const int j = 2 * i + k;
        const float dl = d * static_cast<float>(sc[j]);
        const float ml = dmin * static_cast<float>(mn[j]);
        float* out = y + j * 32;
        for (int l = 0; l < 32; ++l) {
          const int q = ((qs[i * 32 + l] >> (4 * k)) & 0x0F) | (((qh[l] >> j) & 1) << 4);
          out[l] = dl * static_cast<float>(q) - ml;
        }
      }
    }
  }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales (per 16 elements),
// f16 d. Element h*128 + k*64 + l (l < 64) takes nibble k of ql[h*64 + l]; element h*128 + s*32 + l
// (l < 32) takes bits 2s..2s+1 of qh[h*32 + l]; x = (d * scale) * (q - 32).
void dq_q6_k(const uint8_t* x, float* y, uint64_t nb) {
  for (uint64_t b = 0; b < nb; ++b, x += 210, y += kQK) {
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* scales = reinterpret_cast<const int8_t*>(x + 192);
    const float d = load_f16(x + 208);
    float dl[16];
    for (int i = 0; i < 16; ++i) dl[i] = d * static_cast<float>(scales[i]);
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const int group = h * 4 + s;  // 32-element group
        float* out = y + group * 32;
        const uint8_t* low = ql + h * 64 + (s % 2) * 32;
        const int shift = 4 * (s / 2);
        for (int l = 0; l < 32; ++l) {
          const int q = ((low[l] >> shift) & 0x0F) | (((qh[h * 32 + l] >> (2 * s)) & 3) << 4);
          out[l] = dl[group * 2 + l / 16] * static_cast<float>(q - 32);
        }
      }
    }
  }
}

using BlockFn = void (*)(const uint8_t*, float*, uint64_t);

// The dequantizer of a type; element-wise types take the element count, block types the block count.
BlockFn dequantizer(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return dq_f32;
    case GgmlType::F16: return dq_f16;
    case GgmlType::BF16: return dq_bf16;
    case GgmlType::Q4_0: return dq_q4_0;
    case GgmlType::Q4_1: return dq_q4_1;
    case GgmlType::Q5_0: return dq_q5_0;
    case GgmlType::Q5_1: return dq_q5_1;
    case GgmlType::Q8_0: return dq_q8_0;
    case GgmlType::Q2_K: return dq_q2_k;
    case GgmlType::Q3_K: return dq_q3_k;
    case GgmlType::Q4_K: return dq_q4_k;
    case GgmlType::Q5_K: return dq_q5_k;
    case GgmlType::Q6_K: return dq_q6_k;
    default: return nullptr;
  }
}

}  // namespace
}  // namespace gguf_dequant_impl

bool can_dequantize(GgmlType type) { return gguf_dequant_impl::dequantizer(type) != nullptr; }

void dequantize_row(GgmlType type, const uint8_t* src, float* dst, uint64_t n) {
  const auto fn = gguf_dequant_impl::dequantizer(type);
  if (fn == nullptr) fail("cannot dequantize GGUF tensor type {}", ggml_type_name(type));
  const GgmlTypeTraits& traits = ggml_type_traits(type);
  if (n % traits.block_size != 0)
    fail("cannot dequantize {} elements of {}: not a multiple of the block size {}", n, traits.name, traits.block_size);
  fn(src, dst, n / traits.block_size);  // element-wise types have block size 1
}

void dequantize_rows(const GgufFile& file, const GgufTensorInfo& tensor, uint64_t first_row, uint64_t n_rows,
                     float* dst) {
  if (!can_dequantize(tensor.type))
    fail("{}: tensor '{}': cannot dequantize type {} (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
         "Q2_K..Q6_K)",
         file.path(), tensor.name, ggml_type_name(tensor.type));
  const uint64_t rows = tensor.n_rows();
  if (first_row > rows || n_rows > rows - first_row)
    fail("{}: tensor '{}': rows {}..{} requested, it has {}", file.path(), tensor.name, first_row, first_row + n_rows,
         rows);
  if (n_rows == 0) return;
  const GgmlTypeTraits& traits = ggml_type_traits(tensor.type);
  const uint64_t row_bytes = tensor.row_size() / traits.block_size * traits.type_size;
  const GgufBytes data = file.tensor_data(tensor);
  dequantize_row(tensor.type, data.data + first_row * row_bytes, dst, n_rows * tensor.row_size());
}

std::vector<float> dequantize_tensor(const GgufFile& file, const GgufTensorInfo& tensor) {
  std::vector<float> out(tensor.n_elements);
  dequantize_rows(file, tensor, 0, tensor.n_rows(), out.data());
  return out;
}

// ---- float conversions -----------------------------------------------------------------------

float f16_to_float(uint16_t h) {
  using gguf_dequant_impl::bits_float;
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  const uint32_t mantissa = h & 0x3FF;
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000 | (mantissa << 13));
  if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24 is exact in float32.
  return bits_float(sign | gguf_dequant_impl::float_bits(static_cast<float>(mantissa) * 0x1p-24f));
}

void floats_to_f16(const float* src, uint16_t* dst, size_t n) {
  using gguf_dequant_impl::bits_float;
  using gguf_dequant_impl::float_bits;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t w = float_bits(src[i]);
    const auto sign = static_cast<uint16_t>((w >> 16) & 0x8000);
    const uint32_t a = w & 0x7FFFFFFF;
    uint16_t h;
    if (a > 0x7F800000) {
      h = static_cast<uint16_t>(0x7E00 | ((a >> 13) & 0x3FF));  // NaN, kept quiet
    } else if (a >= 0x477FF000) {
      h = 0x7C00;  // at least 65520 (the tie above the largest half, 65504) or infinity
    } else if (a >= 0x38800000) {
      // Normal half: round the 13 dropped mantissa bits to nearest even, then rebias the exponent.
      h = static_cast<uint16_t>((a + 0x0FFF + ((a >> 13) & 1) - 0x38000000) >> 13);
    } else {
      // Subnormal half (or zero): |x| * 2^24 rounded to an integer; adding 1.5 * 2^23 makes the
      // float addition round to nearest even at unit precision.
      const float scaled = bits_float(a) * 0x1p24f + 12582912.0f;
      h = static_cast<uint16_t>(float_bits(scaled) - float_bits(12582912.0f));
    }
    dst[i] = sign | h;
  }
}

void floats_to_bf16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t w = gguf_dequant_impl::float_bits(src[i]);
    if ((w & 0x7FFFFFFF) > 0x7F800000) {
      dst[i] = static_cast<uint16_t>((w >> 16) | 0x0040);  // NaN, kept quiet
    } else {
      dst[i] = static_cast<uint16_t>((w + 0x7FFF + ((w >> 16) & 1)) >> 16);
    }
  }
}

}  // namespace peft::io

#if !defined(__clang__) && defined(__GNUC__)
#pragma GCC pop_options
#endif
