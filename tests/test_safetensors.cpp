// Safetensors reader/writer: round trips, files from the Python package, files for the Python
// package, strict validation of malformed files, zero-copy mapping, atomic writes.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/safetensors_header.h"
#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using peft::io::DType;
using peft::io::SafetensorsFile;

namespace {

const DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                            DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "peft_st_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path operator/(const std::string& name) const { return dir_ / name; }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a raw header text and buffer; `length` overrides the header length.
std::string raw_file(const std::string& header, size_t buffer_bytes, std::optional<uint64_t> length = {}) {
  return u64_le(length.value_or(header.size())) + header + std::string(buffer_bytes, '\0');
}

// Raw bytes of a tensor (contiguous, CPU) for bit-exact comparison.
std::string bytes_of(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

// A tensor of the given dtype filled with random bit patterns (NaNs and all), bool kept 0/1.
torch::Tensor random_bits(DType dtype, std::vector<int64_t> shape) {
  const auto type = peft::io::to_scalar_type(dtype);
  if (dtype == DType::BOOL) return torch::randint(0, 2, shape, torch::kUInt8).to(torch::kBool);
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const int64_t bytes = numel * static_cast<int64_t>(peft::io::dtype_size(dtype));
  return torch::randint(0, 256, {bytes}, torch::kUInt8).view(type).reshape(shape);
}

void expect_same_tensor(const torch::Tensor& expected, const torch::Tensor& actual, const std::string& name) {
  EXPECT_EQ(expected.scalar_type(), actual.scalar_type()) << name;
  EXPECT_EQ(expected.sizes(), actual.sizes()) << name;
  EXPECT_TRUE(actual.device().is_cpu()) << name;
  EXPECT_EQ(bytes_of(expected), bytes_of(actual)) << name;
}

// Runs `f`, expecting a peft::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no peft::Error thrown; expected one mentioning '" << *parts.begin() << "'";
  } catch (const peft::Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

void expect_open_error(const fs::path& path, std::initializer_list<std::string> parts) {
  SCOPED_TRACE(path.filename().string());
  std::vector<std::string> all{path.string()};
  all.insert(all.end(), parts.begin(), parts.end());
  try {
    SafetensorsFile::open(path.string());
    ADD_FAILURE() << "opening " << path << " did not throw";
  } catch (const peft::Error& e) {
    for (const auto& part : all) EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

fs::path fixture(const std::string& name) { return peft::test::fixtures_dir() / "safetensors" / name; }

nlohmann::json expected_json() { return nlohmann::json::parse(read_file(fixture("expected.json"))); }

// Compares a tensor with {"dtype", "shape", "values"} written by the fixture script, exactly.
void expect_matches_json(const torch::Tensor& t, const nlohmann::json& want, const std::string& name) {
  SCOPED_TRACE(name);
  EXPECT_EQ(peft::io::dtype_name(peft::io::from_scalar_type(t.scalar_type())), want["dtype"].get<std::string>());
  EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
  const auto& values = want["values"];
  ASSERT_EQ(t.numel(), static_cast<int64_t>(values.size()));
  const torch::Tensor flat = t.reshape(-1);
  if (t.is_floating_point()) {
    const torch::Tensor d = flat.to(torch::kFloat64);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double v = values[i].get<double>();
      EXPECT_EQ(d[i].item<double>(), v) << "element " << i;
      EXPECT_EQ(std::signbit(d[i].item<double>()), std::signbit(v)) << "element " << i;
    }
  } else {
    const torch::Tensor l = flat.to(torch::kInt64);
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(l[i].item<int64_t>(), values[i].get<int64_t>()) << "element " << i;
  }
}

// The venv python, or empty (then the calling test skips, or fails in CI).
std::string venv_python() {
  const std::string python = PEFT_PYTHON_PATH;
  if (python.empty() || !fs::exists(python)) return {};
  return python;
}

bool mapped_from(const void* ptr, const fs::path& file) {
  // /proc/self/maps: "start-end perms offset dev inode path"
  std::ifstream maps("/proc/self/maps");
  const auto addr = reinterpret_cast<uintptr_t>(ptr);
  const std::string wanted = fs::canonical(file).string();
  for (std::string line; std::getline(maps, line);) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &start, &end) != 2 || addr < start || addr >= end) continue;
    return line.size() >= wanted.size() && line.compare(line.size() - wanted.size(), wanted.size(), wanted) == 0;
  }
  return false;
}

}  // namespace

// ---- round trips -------------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, EveryDTypeBitExactIncludingScalarsAndEmpty) {
  TempDir dir;
  torch::manual_seed(0);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (DType dtype : kAllDTypes) {
    const std::string base = peft::io::dtype_name(dtype);
    tensors.emplace_back(base + ".matrix", random_bits(dtype, {3, 5}));
    tensors.emplace_back(base + ".scalar", random_bits(dtype, {}));
    tensors.emplace_back(base + ".empty", random_bits(dtype, {0, 3}));
  }
  const auto path = (dir / "all.safetensors").string();
  peft::io::save_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
  ASSERT_EQ(file.names().size(), tensors.size());
  const auto names = file.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(file.contains(name)) << name;
    EXPECT_EQ(file.info(name).dtype, peft::io::from_scalar_type(t.scalar_type())) << name;
    EXPECT_EQ(file.info(name).shape, t.sizes().vec()) << name;
    expect_same_tensor(t, file.tensor(name), name);
  }
}

TEST(SafetensorsRoundTrip, NonContiguousInputIsWrittenContiguous) {
  TempDir dir;
  const torch::Tensor base = torch::arange(24, torch::kFloat32).reshape({4, 6});
  const torch::Tensor transposed = base.t();               // non-contiguous
  const torch::Tensor strided = base.index({torch::indexing::Slice(), torch::indexing::Slice(1, 6, 2)});
  const auto path = (dir / "views.safetensors").string();
  peft::io::save_safetensors(path, {{"t", transposed}, {"s", strided}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(torch::equal(file.tensor("t"), transposed));
  EXPECT_TRUE(torch::equal(file.tensor("s"), strided));
}

TEST(SafetensorsRoundTrip, HeaderPaddedToEightBytesAndMetadataOnlyWhenGiven) {
  TempDir dir;
  const auto path = (dir / "a.safetensors").string();
  peft::io::save_safetensors(path, {{"abc", torch::ones({3}, torch::kFloat16)}});
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);
  EXPECT_EQ(header.rfind("{\"abc\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}", 0), 0u) << header;
  EXPECT_EQ(header.find_first_not_of(' ', header.find_last_of('}') + 1), std::string::npos);
  EXPECT_EQ(bytes.size(), 8 + n + 6);
  EXPECT_EQ(SafetensorsFile::open(path).data_bytes(), 6u);
}

TEST(SafetensorsRoundTrip, EmptyFileHasNoTensors) {
  TempDir dir;
  const auto path = (dir / "empty.safetensors").string();
  peft::io::save_safetensors(path, {});
  const auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(file.names().empty());
  EXPECT_EQ(file.data_bytes(), 0u);
}

TEST(SafetensorsWrite, RejectsBadInput) {
  TempDir dir;
  const auto path = (dir / "bad.safetensors").string();
  expect_error([&] { peft::io::save_safetensors(path, {{"a", torch::ones(2)}, {"a", torch::ones(2)}}); },
               {path, "'a'", "twice"});
  expect_error([&] { peft::io::save_safetensors(path, {{"__metadata__", torch::ones(2)}}); }, {path, "reserved"});
  expect_error([&] { peft::io::save_safetensors(path, {{"c", torch::ones(2, torch::kComplexFloat)}}); },
               {path, "'c'", "ComplexFloat"});
  expect_error([&] { peft::io::save_safetensors(path, {{"u", torch::Tensor()}}); }, {path, "'u'", "undefined"});
  expect_error([&] { peft::io::save_safetensors(path, {{"sparse", torch::ones({2, 2}).to_sparse()}}); },
               {path, "'sparse'", "Sparse"});
  expect_error([&] { peft::io::save_safetensors(path, {{"bad\xff", torch::ones(2)}}); }, {path, "UTF-8"});
  expect_error([&] { peft::io::save_safetensors(path, {{"a", torch::ones(2)}}, {{"k", "\xfe"}}); }, {path, "UTF-8"});
  EXPECT_FALSE(fs::exists(path));
}

TEST(SafetensorsDType, NamesSizesAndScalarTypes) {
  for (DType dtype : kAllDTypes) {
    const auto type = peft::io::to_scalar_type(dtype);
    EXPECT_EQ(peft::io::dtype_size(dtype), c10::elementSize(type)) << peft::io::dtype_name(dtype);
    EXPECT_EQ(peft::io::from_scalar_type(type), dtype);
    EXPECT_EQ(peft::io::detail::find_dtype(peft::io::dtype_name(dtype)), static_cast<int>(dtype));
  }
  EXPECT_EQ(peft::io::dtype_name(DType::BF16), "BF16");
  EXPECT_THROW(peft::io::from_scalar_type(torch::kComplexDouble), peft::Error);
}

// ---- interoperability with the Python package ----------------------------------------------------

TEST(SafetensorsPython, FixtureWrittenByPythonLoadsExactly) {
  const auto path = fixture("python_all_dtypes.safetensors");
  const auto want = expected_json()["python_all_dtypes.safetensors"];
  const auto file = SafetensorsFile::open(path.string());
  const auto metadata = want["metadata"].get<std::map<std::string, std::string>>();
  EXPECT_EQ(file.metadata(), metadata);
  std::vector<std::string> names;
  for (const auto& [name, _] : want["tensors"].items()) names.push_back(name);
  EXPECT_EQ(file.names(), names);  // both sorted
  for (const auto& [name, t] : want["tensors"].items()) expect_matches_json(file.tensor(name), t, name);
}

TEST(SafetensorsPython, FileWrittenByCppLoadsInPythonIdentically) {
  const std::string python = venv_python();
  if (python.empty()) {
    if (peft::test::in_ci()) FAIL() << "PEFT_PYTHON_PATH missing in CI: '" << PEFT_PYTHON_PATH << "'";
    GTEST_SKIP() << "no venv python (PEFT_PYTHON_PATH='" << PEFT_PYTHON_PATH << "'); skipping";
  }
  TempDir dir;
  torch::manual_seed(1);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (DType dtype : kAllDTypes) {
    const std::string base = "model." + peft::io::dtype_name(dtype);
    tensors.emplace_back(base + ".w", random_bits(dtype, {2, 3}));
    tensors.emplace_back(base + ".s", random_bits(dtype, {}));
    tensors.emplace_back(base + ".e", random_bits(dtype, {0}));
  }
  const auto path = dir / "cpp.safetensors";
  peft::io::save_safetensors(path.string(), tensors, {{"format", "pt"}});

  // Python loads the file, reports each tensor's raw bytes, and re-saves it with its own writer:
  // the bytes must be identical to ours.
  const auto script = dir / "check.py";
  write_file(script, R"(import json, sys, torch
from safetensors import safe_open
from safetensors.torch import load_file, save
path, out = sys.argv[1], sys.argv[2]
tensors = load_file(path)
with safe_open(path, "pt") as f:
    metadata = f.metadata()
report = {"metadata": metadata, "same_bytes": save(tensors, metadata=metadata) == open(path, "rb").read(),
          "tensors": {k: {"dtype": str(t.dtype), "shape": list(t.shape),
                          "hex": t.reshape(-1).view(torch.uint8).numpy().tobytes().hex()} for k, t in tensors.items()}}
json.dump(report, open(out, "w"))
)");
  const auto report_path = dir / "report.json";
  const auto log = dir / "log.txt";
  const std::string command =
      "'" + python + "' '" + script.string() + "' '" + path.string() + "' '" + report_path.string() + "' > '" +
      log.string() + "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << read_file(log);

  const auto report = nlohmann::json::parse(read_file(report_path));
  EXPECT_EQ(report["metadata"], (nlohmann::json{{"format", "pt"}}));
  EXPECT_TRUE(report["same_bytes"].get<bool>()) << "Python's writer lays the same tensors out differently";
  ASSERT_EQ(report["tensors"].size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const auto& got = report["tensors"][name];
    EXPECT_EQ(got["shape"].get<std::vector<int64_t>>(), t.sizes().vec()) << name;
    std::string hex;
    for (unsigned char c : bytes_of(t)) hex += fmt::format("{:02x}", c);
    EXPECT_EQ(got["hex"].get<std::string>(), hex) << name;
  }
}

// ---- validation ----------------------------------------------------------------------------------

TEST(SafetensorsValidation, MalformedFilesAreErrorsNamingTheFile) {
  TempDir dir;
  auto make = [&](const std::string& name, const std::string& bytes) {
    const auto path = dir / name;
    write_file(path, bytes);
    return path;
  };
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  expect_open_error(make("empty", ""), {"too short"});
  expect_open_error(make("short", "\x10\x00\x00"), {"too short"});
  expect_open_error(make("length_past_end", raw_file("{}", 0, 100)), {"header length 100", "larger than the rest"});
  expect_open_error(make("length_over_limit", raw_file("{}", 0, 100'000'001)), {"exceeds"});
  expect_open_error(make("huge_length", raw_file("{}", 0, ~uint64_t{0})), {"exceeds"});
  expect_open_error(make("not_json", raw_file(R"({"a":)", 8)), {"not valid JSON"});
  expect_open_error(make("trailing_nul", raw_file(std::string("{}") + '\0', 0)), {"not valid JSON", "NUL"});
  expect_open_error(make("nul_then_garbage", raw_file(std::string("{}") + '\0' + "xyz", 0)), {"not valid JSON"});
  expect_open_error(make("bad_utf8", raw_file("{\"a\xff\":" + f32x2 + "}", 8)), {"not valid JSON"});
  expect_open_error(make("not_object", raw_file("[1,2]", 0)), {"not a JSON object"});
  expect_open_error(make("entry_not_object", raw_file(R"({"a":null})", 0)), {"'a'", "not a JSON object"});
  expect_open_error(make("missing_dtype", raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "missing \"dtype\""});
  expect_open_error(make("missing_shape", raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8)),
                    {"'a'", "missing \"shape\""});
  expect_open_error(make("missing_offsets", raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8)),
                    {"'a'", "missing \"data_offsets\""});
  expect_open_error(make("dtype_not_string", raw_file(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "\"dtype\" is not a string"});
  expect_open_error(make("shape_not_array", raw_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8)),
                    {"'a'", "\"shape\" is not an array"});
  expect_open_error(make("shape_float", raw_file(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "not a non-negative integer"});
  expect_open_error(make("shape_string", raw_file(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "not a non-negative integer"});
  expect_open_error(make("negative_dim", raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "negative dimension -2"});
  expect_open_error(make("offsets_three", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8)),
                    {"'a'", "data_offsets"});
  expect_open_error(make("offsets_object", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":{}}})", 8)),
                    {"'a'", "data_offsets"});
  expect_open_error(make("offset_negative", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8)),
                    {"'a'", "negative data offset"});
  expect_open_error(make("unknown_dtype", raw_file(R"({"a":{"dtype":"XYZ","shape":[2],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "unsupported dtype 'XYZ'"});
  expect_open_error(make("f8_dtype", raw_file(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2)),
                    {"'a'", "unsupported dtype 'F8_E4M3'"});
  expect_open_error(make("begin_after_end", raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8)),
                    {"'a'", "begin 8 > end 0"});
  expect_open_error(make("end_past_buffer", raw_file("{\"a\":" + f32x2 + "}", 4)), {"'a'", "beyond the 4-byte"});
  expect_open_error(make("size_mismatch", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
                    {"'a'", "need 12 bytes", "span 8"});
  expect_open_error(
      make("shape_overflow",
           raw_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,256],"data_offsets":[0,8]}})", 8)),
      {"'a'", "overflows"});
  expect_open_error(
      make("overflow_before_zero",
           raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0)),
      {"'a'", "overflows"});
  expect_open_error(make("overlap", raw_file("{\"a\":" + f32x2 +
                                                 R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                             8)),
                    {"'b'", "overlaps tensor 'a'"});
  expect_open_error(make("empty_inside_other", raw_file("{\"a\":" + f32x2 +
                                                            R"(,"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                                                        8)),
                    {"'e'", "overlaps"});
  expect_open_error(make("gap", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                         12)),
                    {"'b'", "4 unused bytes before"});
  expect_open_error(make("leading_hole", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
                    {"'a'", "4 unused bytes before"});
  expect_open_error(make("trailing_bytes", raw_file("{\"a\":" + f32x2 + "}", 12)), {"4 unused bytes at the end"});
  expect_open_error(make("duplicate_key", raw_file("{\"a\":" + f32x2 + ",\"a\":" + f32x2 + "}", 8)),
                    {"duplicate key 'a'"});
  expect_open_error(make("duplicate_field",
                         raw_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)),
                    {"duplicate key 'dtype'"});
  expect_open_error(make("metadata_int", raw_file(R"({"__metadata__":{"x":1},"a":)" + f32x2 + "}", 8)),
                    {"__metadata__", "'x'", "not a string"});
  expect_open_error(make("metadata_list", raw_file(R"({"__metadata__":[],"a":)" + f32x2 + "}", 8)),
                    {"__metadata__", "not a JSON object"});
  expect_open_error(make("deep_nesting", raw_file(R"({"a":)" + std::string(500, '[') + std::string(500, ']') + "}", 0)),
                    {"nests deeper"});
  expect_open_error(dir / "does_not_exist.safetensors", {"cannot open"});
  expect_open_error(dir.path(), {"not a regular file"});
}

TEST(SafetensorsValidation, AcceptsWhatPythonAccepts) {
  TempDir dir;
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  auto open = [&](const std::string& name, const std::string& bytes) {
    write_file(dir / name, bytes);
    return SafetensorsFile::open((dir / name).string());
  };
  // Whitespace around the JSON (the Python writer pads with spaces), null metadata, extra fields,
  // empty tensors at the end of the buffer, and any order of entries in the header.
  EXPECT_EQ(open("padded", raw_file("  {\"a\":" + f32x2 + "}   \n", 8)).names(), std::vector<std::string>{"a"});
  EXPECT_TRUE(open("null_meta", raw_file(R"({"__metadata__":null,"a":)" + f32x2 + "}", 8)).metadata().empty());
  EXPECT_TRUE(open("extra", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[1]}})", 8))
                  .contains("a"));
  const auto f = open("order", raw_file(R"({"z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
                                        R"("b":{"dtype":"I16","shape":[2],"data_offsets":[4,8]},)"
                                        R"("a":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}})",
                                        8));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "z"}));
  EXPECT_EQ(f.info("b").begin, 4u);
  EXPECT_EQ(f.info("b").end, 8u);
  EXPECT_EQ(f.info("z").shape, std::vector<int64_t>{0});
  EXPECT_EQ(f.tensor("z").sizes().vec(), std::vector<int64_t>{0});
  expect_error([&] { f.info("missing"); }, {(dir / "order").string(), "'missing'"});
  expect_error([&] { f.tensor("missing"); }, {(dir / "order").string(), "'missing'"});
}

TEST(SafetensorsValidation, FuzzCorpusNeverCrashes) {
  const auto corpus = peft::test::source_dir() / "fuzz" / "corpus" / "safetensors";
  ASSERT_TRUE(fs::is_directory(corpus)) << corpus;
  int files = 0, valid = 0;
  for (const auto& entry : fs::directory_iterator(corpus)) {
    ++files;
    try {
      const auto file = SafetensorsFile::open(entry.path().string());
      for (const auto& name : file.names()) file.tensor(name).sum();
      ++valid;
    } catch (const peft::Error& e) {
      EXPECT_NE(std::string(e.what()).find(entry.path().string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(files, 10);
  EXPECT_GE(valid, 2);  // the valid_* seeds
}

// ---- memory mapping ------------------------------------------------------------------------------

TEST(SafetensorsMapping, AlignedTensorsAreZeroCopyViewsOfTheFile) {
  TempDir dir;
  const auto path = dir / "mapped.safetensors";
  peft::io::save_safetensors(path.string(), {{"w", torch::randn({16, 16})},
                                             {"b", torch::randn({5}, torch::kFloat16)},
                                             {"m", torch::ones({3}, torch::kBool)}});
  const auto file = SafetensorsFile::open(path.string());
  for (const auto& name : file.names()) {
    const torch::Tensor t = file.tensor(name);
    EXPECT_TRUE(mapped_from(t.data_ptr(), path)) << name << " is not inside the mapping of " << path;
    EXPECT_EQ(file.tensor(name).data_ptr(), t.data_ptr()) << name;
  }
}

TEST(SafetensorsMapping, MisalignedTensorsAreCopiedAligned) {
  TempDir dir;
  const auto path = dir / "unaligned.safetensors";
  // U8 at offset 0 pushes the F32 to offset 1 (legal, but never produced by the Python writer).
  // The header is padded so that only the tensor offset is odd, not the buffer start.
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const float value = 3.25f;
  std::string bytes = raw_file(header, 0) + '\x07';
  bytes.append(reinterpret_cast<const char*>(&value), 4);
  write_file(path, bytes);
  const auto file = SafetensorsFile::open(path.string());
  const torch::Tensor b = file.tensor("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data_ptr()) % alignof(float), 0u);
  EXPECT_FALSE(mapped_from(b.data_ptr(), path));
  EXPECT_EQ(b.item<float>(), value);
  EXPECT_EQ(file.tensor("a").item<uint8_t>(), 7);
  EXPECT_TRUE(mapped_from(file.tensor("a").data_ptr(), path));
}

TEST(SafetensorsMapping, TensorsOutliveTheFileObjectAndTheFileOnDisk) {
  TempDir dir;
  const auto path = dir / "outlive.safetensors";
  const torch::Tensor original = torch::arange(1000, torch::kFloat64);
  peft::io::save_safetensors(path.string(), {{"x", original}});
  torch::Tensor kept;
  {
    const auto file = SafetensorsFile::open(path.string());
    const SafetensorsFile copy = file;  // copies share the mapping
    kept = copy.tensor("x");
  }
  fs::remove(path);
  EXPECT_TRUE(torch::equal(kept, original));
}

// ---- atomic writes -------------------------------------------------------------------------------

TEST(SafetensorsAtomicWrite, ThrowingWriterLeavesOldFileAndNoTempFiles) {
  TempDir dir;
  const auto path = (dir / "out.txt").string();
  peft::io::write_file_atomically(path, std::string_view("old contents"));
  EXPECT_THROW(peft::io::write_file_atomically(path,
                                               [](std::ostream& out) {
                                                 out << "half written";
                                                 throw std::runtime_error("writer failed");
                                               }),
               std::runtime_error);
  EXPECT_EQ(read_file(path), "old contents");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);

  peft::io::write_file_atomically(path, [](std::ostream& out) { out << "new " << 42; });
  EXPECT_EQ(read_file(path), "new 42");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(SafetensorsAtomicWrite, FailedSaveKeepsPreviousCheckpoint) {
  TempDir dir;
  const auto path = (dir / "ckpt.safetensors").string();
  peft::io::save_safetensors(path, {{"w", torch::ones({2})}});
  const std::string before = read_file(path);
  expect_error([&] { peft::io::save_safetensors(path, {{"w", torch::ones({2}, torch::kComplexFloat)}}); }, {path});
  EXPECT_EQ(read_file(path), before);
}

TEST(SafetensorsAtomicWrite, MissingFolderIsAnErrorNamingThePath) {
  TempDir dir;
  const auto path = (dir / "no" / "such" / "dir.txt").string();
  expect_error([&] { peft::io::write_file_atomically(path, std::string_view("x")); }, {path});
  EXPECT_FALSE(fs::exists(dir / "no"));
}

TEST(SafetensorsAtomicWrite, LargeWritesAndUsualPermissions) {
  TempDir dir;
  const auto path = (dir / "big.bin").string();
  peft::io::write_file_atomically(path, [](std::ostream& out) {
    const std::string block(1 << 20, 'x');
    out << 'a';  // through the buffer, then blocks that bypass it
    for (int i = 0; i < 3; ++i) out.write(block.data(), static_cast<std::streamsize>(block.size()));
    out << 'z';
  });
  const std::string bytes = read_file(path);
  ASSERT_EQ(bytes.size(), (3u << 20) + 2);
  EXPECT_EQ(bytes.front(), 'a');
  EXPECT_EQ(bytes.back(), 'z');
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(static_cast<mode_t>(fs::status(path).permissions()), 0666 & ~mask);

  // Replacing a file keeps its permissions.
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  peft::io::write_file_atomically(path, std::string_view("private"));
  EXPECT_EQ(fs::status(path).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(read_file(path), "private");
}
