#pragma once
// Dequantization of GGUF tensor data to float32, bit-exact with gguf-py's gguf.quants.dequantize
// (same float32 operations in the same order). Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Free of LibTorch.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "peft/io/gguf.h"

namespace peft::io {

bool can_dequantize(GgmlType type);

// Dequantizes `n` elements (a multiple of the type's block size) from `src`, which holds
// n / block_size * type_size bytes, into `dst`. Throws peft::Error for types without a
// dequantizer or a bad `n`.
void dequantize_row(GgmlType type, const uint8_t* src, float* dst, uint64_t n);

// Rows [first_row, first_row + n_rows) of `tensor` (a row is its ne[0] elements) into `dst`,
// which holds n_rows * ne[0] floats. Errors name the file and tensor.
void dequantize_rows(const GgufFile& file, const GgufTensorInfo& tensor, uint64_t first_row, uint64_t n_rows,
                     float* dst);

// The whole tensor, in file order (ne[0] fastest, i.e. row-major in PyTorch's shape).
std::vector<float> dequantize_tensor(const GgufFile& file, const GgufTensorInfo& tensor);

// float32 -> IEEE half / bfloat16 bit patterns, rounding to nearest even like LibTorch and numpy
// (same bits for every non-NaN input; too large values become infinity). A NaN stays a quiet NaN
// with its sign; its payload bits are not specified (LibTorch's own kernels disagree there).
void floats_to_f16(const float* src, uint16_t* dst, size_t n);
void floats_to_bf16(const float* src, uint16_t* dst, size_t n);
float f16_to_float(uint16_t h);  // exact; NaN payloads kept, as numpy does

}  // namespace peft::io
