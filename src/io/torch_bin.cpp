// torch.save zip checkpoints: LibTorch's zip reader for the container, and a small restricted
// unpickler for data.pkl.
//
// Why not torch::pickle_load: LibTorch's unpickler turns every collections.OrderedDict into None,
// so it fails on exactly what torch.save(model.state_dict()) writes (an OrderedDict, with a
// `_metadata` attribute set through BUILD). The unpickler here understands the handful of opcodes
// and globals a state dict uses, like Python's torch.load(weights_only=True), and refuses any
// other global, so a checkpoint cannot run code.
#include "peft/io/torch_bin.h"

#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>

#include <caffe2/serialize/inline_container.h>

#include "peft/error.h"

namespace peft::io {
namespace {

// ---- Python values -----------------------------------------------------------------------------

struct PyValue;
using Value = std::shared_ptr<PyValue>;  // pickle objects have reference semantics (memo, dicts)

struct PyValue {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t integer = 0;                         // Bool, Int
  double real = 0;                             // Float
  std::string text;                            // Str, Bytes, Global ("module.name")
  std::vector<Value> items;                    // Tuple, List
  std::vector<std::pair<Value, Value>> entries;  // Dict, in insertion order
  std::unordered_map<std::string, size_t> str_index;  // Dict: position of each str key
  c10::Storage storage;                        // Storage
  torch::ScalarType dtype = torch::kFloat;     // Storage
  torch::Tensor tensor;                        // Tensor
};

Value make(PyValue::Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}

Value make_int(int64_t i) {
  Value v = make(PyValue::Kind::Int);
  v->integer = i;
  return v;
}

Value make_text(PyValue::Kind kind, std::string text) {
  Value v = make(kind);
  v->text = std::move(text);
  return v;
}

Value make_sequence(PyValue::Kind kind, std::vector<Value> items) {
  Value v = make(kind);
  v->items = std::move(items);
  return v;
}

const char* kind_name(PyValue::Kind kind) {
  switch (kind) {
    case PyValue::Kind::None: return "None";
    case PyValue::Kind::Bool: return "bool";
    case PyValue::Kind::Int: return "int";
    case PyValue::Kind::Float: return "float";
    case PyValue::Kind::Str: return "str";
    case PyValue::Kind::Bytes: return "bytes";
    case PyValue::Kind::Tuple: return "tuple";
    case PyValue::Kind::List: return "list";
    case PyValue::Kind::Dict: return "dict";
    case PyValue::Kind::Global: return "class or function";
    case PyValue::Kind::Storage: return "storage";
    case PyValue::Kind::Tensor: return "tensor";
  }
  return "?";
}

// Internal failure while decoding; turned into the "not a torch.save zip checkpoint" error.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void bad(fmt::format_string<Args...> format, Args&&... args) {
  throw FormatError(fmt::format(format, std::forward<Args>(args)...));
}

void dict_set(PyValue& dict, Value key, Value value) {
  if (key->kind == PyValue::Kind::Str) {
    auto [it, inserted] = dict.str_index.emplace(key->text, dict.entries.size());
    if (!inserted) {
      dict.entries[it->second].second = std::move(value);  // Python keeps the first position
      return;
    }
  }
  dict.entries.emplace_back(std::move(key), std::move(value));
}

// ---- globals a state dict may use ----------------------------------------------------------------

std::optional<torch::ScalarType> storage_dtype(const std::string& global) {
  static const std::unordered_map<std::string, torch::ScalarType> kStorages = {
      {"torch.DoubleStorage", torch::kFloat64}, {"torch.FloatStorage", torch::kFloat32},
      {"torch.HalfStorage", torch::kFloat16},   {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},     {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},    {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},     {"torch.BoolStorage", torch::kBool},
  };
  auto it = kStorages.find(global);
  if (it == kStorages.end()) return std::nullopt;
  return it->second;
}

bool allowed_global(const std::string& name) {
  static const std::set<std::string> kAllowed = {
      "collections.OrderedDict",        "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
      "torch._tensor._rebuild_from_type_v2", "torch._tensor.Tensor",
      "torch.Tensor",                   "torch.nn.parameter.Parameter",
      // Type tags and typed lists written by LibTorch's own torch::pickle_save.
      "torch.jit._pickle.restore_type_tag", "torch.jit._pickle.build_intlist",
      "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.build_doublelist",
      "torch.jit._pickle.build_boollist",
  };
  return kAllowed.count(name) > 0 || storage_dtype(name).has_value();
}

// ---- the unpickler -------------------------------------------------------------------------------

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, caffe2::serialize::PyTorchStreamReader& archive)
      : p_(data), end_(data + size), archive_(archive) {}

  Value run() {
    while (true) {
      const uint8_t op = read<uint8_t>();
      if (op == '.') return pop();  // STOP
      step(op);
    }
  }

 private:
  template <typename T>
  T read() {  // little-endian, as pickle stores its integers
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }

  void need(uint64_t n) const {
    if (n > static_cast<uint64_t>(end_ - p_)) bad("data.pkl is truncated");
  }

  std::string read_bytes(uint64_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return s;
  }

  std::string read_line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    if (nl == nullptr) bad("data.pkl is truncated");
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(nl - p_));
    p_ = nl + 1;
    return s;
  }

  Value pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) bad("pickle stack underflow");
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }

  Value& top() {
    if (stack_.empty()) bad("pickle stack underflow");
    return stack_.back();
  }

  std::vector<Value> pop_to_mark() {
    if (marks_.empty()) bad("pickle MARK missing");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(start)),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(start);
    return items;
  }

  PyValue& expect(const Value& v, PyValue::Kind kind, const char* what) {
    if (v->kind != kind) bad("{} is a {}, expected a {}", what, kind_name(v->kind), kind_name(kind));
    return *v;
  }

  void memo_put(uint64_t id) { memo_[id] = top(); }

  void memo_get(uint64_t id) {
    auto it = memo_.find(id);
    if (it == memo_.end()) bad("pickle memo entry {} is missing", id);
    stack_.push_back(it->second);
  }

  void push_global(const std::string& module, const std::string& name) {
    std::string full = module + "." + name;
    if (!allowed_global(full)) bad("unsupported Python object '{}' (only tensors and dicts are loaded)", full);
    stack_.push_back(make_text(PyValue::Kind::Global, std::move(full)));
  }

  void set_items(Value& dict, std::vector<Value>& kv) {
    PyValue& d = expect(dict, PyValue::Kind::Dict, "SETITEMS target");
    if (kv.size() % 2 != 0) bad("odd number of dict items");
    for (size_t i = 0; i < kv.size(); i += 2) dict_set(d, std::move(kv[i]), std::move(kv[i + 1]));
  }

  void step(uint8_t op) {
    using K = PyValue::Kind;
    switch (op) {
      case 0x80: read<uint8_t>(); break;                   // PROTO
      case 0x95: read<uint64_t>(); break;                  // FRAME
      case '(': marks_.push_back(stack_.size()); break;    // MARK
      case '0': pop(); break;                              // POP
      case '1': pop_to_mark(); break;                      // POP_MARK
      case '2': stack_.push_back(top()); break;            // DUP
      case 'q': memo_put(read<uint8_t>()); break;          // BINPUT
      case 'r': memo_put(read<uint32_t>()); break;         // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;            // MEMOIZE
      case 'h': memo_get(read<uint8_t>()); break;          // BINGET
      case 'j': memo_get(read<uint32_t>()); break;         // LONG_BINGET
      case 'N': stack_.push_back(make(K::None)); break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Value v = make(K::Bool);
        v->integer = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'K': stack_.push_back(make_int(read<uint8_t>())); break;   // BININT1
      case 'M': stack_.push_back(make_int(read<uint16_t>())); break;  // BININT2
      case 'J': stack_.push_back(make_int(read<int32_t>())); break;   // BININT
      case 0x8a: stack_.push_back(make_int(read_long(read<uint8_t>()))); break;  // LONG1
      case 'G': {  // BINFLOAT, big-endian
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | read<uint8_t>();
        Value v = make(K::Float);
        std::memcpy(&v->real, &bits, 8);
        stack_.push_back(v);
        break;
      }
      case 'X': stack_.push_back(make_text(K::Str, read_bytes(read<uint32_t>()))); break;    // BINUNICODE
      case 0x8c: stack_.push_back(make_text(K::Str, read_bytes(read<uint8_t>()))); break;    // SHORT_BINUNICODE
      case 0x8d: stack_.push_back(make_text(K::Str, read_bytes(read<uint64_t>()))); break;   // BINUNICODE8
      case 'C': stack_.push_back(make_text(K::Bytes, read_bytes(read<uint8_t>()))); break;   // SHORT_BINBYTES
      case 'B': stack_.push_back(make_text(K::Bytes, read_bytes(read<uint32_t>()))); break;  // BINBYTES
      case ')': stack_.push_back(make_sequence(K::Tuple, {})); break;                          // EMPTY_TUPLE
      case 't': stack_.push_back(make_sequence(K::Tuple, pop_to_mark())); break;               // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<Value> items(static_cast<size_t>(op - 0x84));
        for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
        stack_.push_back(make_sequence(K::Tuple, std::move(items)));
        break;
      }
      case ']': stack_.push_back(make_sequence(K::List, {})); break;            // EMPTY_LIST
      case 'l': stack_.push_back(make_sequence(K::List, pop_to_mark())); break;  // LIST
      case 'a': {                                                                 // APPEND
        Value v = pop();
        expect(top(), K::List, "APPEND target").items.push_back(std::move(v));
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Value> items = pop_to_mark();
        auto& list = expect(top(), K::List, "APPENDS target").items;
        list.insert(list.end(), items.begin(), items.end());
        break;
      }
      case '}': stack_.push_back(make(K::Dict)); break;  // EMPTY_DICT
      case 'd': {                                        // DICT
        std::vector<Value> kv = pop_to_mark();
        Value dict = make(K::Dict);
        set_items(dict, kv);
        stack_.push_back(dict);
        break;
      }
      case 's': {  // SETITEM
        std::vector<Value> kv(2);
        kv[1] = pop();
        kv[0] = pop();
        set_items(top(), kv);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Value> kv = pop_to_mark();
        set_items(top(), kv);
        break;
      }
      case 'c': {  // GLOBAL
        std::string module = read_line();
        push_global(module, read_line());
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value name = pop();
        Value module = pop();
        push_global(expect(module, K::Str, "module name").text, expect(name, K::Str, "global name").text);
        break;
      }
      case 'R':      // REDUCE
      case 0x81: {   // NEWOBJ
        Value args = pop();
        Value callable = pop();
        stack_.push_back(call(expect(callable, K::Global, "callable").text, expect(args, K::Tuple, "arguments").items));
        break;
      }
      case 'b': {  // BUILD: state for an object; state dicts carry `_metadata` here, tensors none we need
        pop();
        const Value& target = top();
        if (target->kind != K::Dict && target->kind != K::Tensor) bad("BUILD on a {}", kind_name(target->kind));
        break;
      }
      case 'Q': stack_.push_back(load_storage(expect(pop(), K::Tuple, "persistent id").items)); break;  // BINPERSID
      default:
        bad("unsupported pickle opcode 0x{:02x}", op);
    }
  }

  int64_t read_long(uint8_t n) {
    if (n > 8) bad("integer of {} bytes is too large", n);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(read<uint8_t>()) << (8 * i);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }

  static int64_t as_int(const Value& v, const char* what) {
    if (v->kind != PyValue::Kind::Int) bad("{} is a {}, expected an int", what, kind_name(v->kind));
    return v->integer;
  }

  static std::vector<int64_t> int_tuple(const Value& v, const char* what) {
    if (v->kind != PyValue::Kind::Tuple) bad("{} is a {}, expected a tuple", what, kind_name(v->kind));
    std::vector<int64_t> out;
    for (const auto& item : v->items) out.push_back(as_int(item, what));
    return out;
  }

  Value call(const std::string& fn, const std::vector<Value>& args, int depth = 0) {
    if (fn == "collections.OrderedDict") {
      if (!args.empty()) bad("OrderedDict with arguments");
      return make(PyValue::Kind::Dict);
    }
    if (fn == "torch._utils._rebuild_tensor_v2") {
      if (args.size() < 4) bad("_rebuild_tensor_v2 with {} arguments", args.size());
      return rebuild_tensor(args[0], as_int(args[1], "storage offset"), int_tuple(args[2], "size"),
                            int_tuple(args[3], "stride"));
    }
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || args[0]->kind != PyValue::Kind::Tensor) bad("{} without a tensor", fn);
      return args[0];  // a Parameter is its data here
    }
    if (fn == "torch._tensor._rebuild_from_type_v2") {  // (func, type, args, state): tensors with attributes
      if (args.size() < 3 || depth > 2) bad("unexpected _rebuild_from_type_v2 call");
      return call(expect(args[0], PyValue::Kind::Global, "rebuild function").text,
                  expect(args[2], PyValue::Kind::Tuple, "rebuild arguments").items, depth + 1);
    }
    if (fn.rfind("torch.jit._pickle.", 0) == 0) {  // (value, type) or (list,): the value as is
      if (args.empty()) bad("{} without arguments", fn);
      return args[0];
    }
    bad("cannot call '{}'", fn);
  }

  // ('storage', <storage class>, key, location, numel): the bytes of record data/<key>, read to CPU.
  Value load_storage(const std::vector<Value>& pid) {
    if (pid.size() != 5 || pid[0]->kind != PyValue::Kind::Str || pid[0]->text != "storage")
      bad("unsupported persistent id");
    const auto dtype = storage_dtype(expect(pid[1], PyValue::Kind::Global, "storage type").text);
    if (!dtype) bad("unsupported storage type '{}'", pid[1]->text);
    const std::string& key = expect(pid[2], PyValue::Kind::Str, "storage key").text;
    const int64_t numel = as_int(pid[4], "storage size");
    if (numel < 0) bad("negative storage size");

    auto it = storages_.find(key);
    if (it == storages_.end()) {
      Value v = make(PyValue::Kind::Storage);
      v->dtype = *dtype;
      const uint64_t bytes = static_cast<uint64_t>(numel) * c10::elementSize(*dtype);
      at::DataPtr data;
      if (bytes > 0) {
        size_t size = 0;
        std::tie(data, size) = archive_.getRecord("data/" + key);
        if (size < bytes) bad("storage '{}' holds {} bytes, needs {}", key, size, bytes);
      }
      v->storage = c10::Storage(c10::Storage::use_byte_size_t(), bytes, std::move(data), nullptr, false);
      it = storages_.emplace(key, v).first;
    }
    if (it->second->dtype != *dtype) bad("storage '{}' is used with two dtypes", key);
    return it->second;
  }

  static Value rebuild_tensor(const Value& storage, int64_t offset, const std::vector<int64_t>& size,
                              const std::vector<int64_t>& stride) {
    if (storage->kind != PyValue::Kind::Storage) bad("tensor storage is a {}", kind_name(storage->kind));
    if (size.size() != stride.size()) bad("tensor size and stride differ in length");
    // Bounds check before set_(), in 64-bit arithmetic with overflow detection.
    const int64_t available = static_cast<int64_t>(storage->storage.nbytes() / c10::elementSize(storage->dtype));
    int64_t last = offset;
    bool empty = false;
    for (size_t i = 0; i < size.size(); ++i) {
      if (size[i] < 0 || stride[i] < 0) bad("negative tensor size or stride");
      if (size[i] == 0) empty = true;
      int64_t span = 0;
      if (size[i] > 0 && (__builtin_mul_overflow(size[i] - 1, stride[i], &span) || __builtin_add_overflow(last, span, &last)))
        bad("tensor size overflows");
    }
    if (offset < 0 || (!empty && last >= available)) bad("tensor extends past its storage");
    Value v = make(PyValue::Kind::Tensor);
    v->tensor = torch::empty({0}, torch::TensorOptions().dtype(storage->dtype)).set_(storage->storage, offset, size, stride);
    return v;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  caffe2::serialize::PyTorchStreamReader& archive_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
  std::unordered_map<std::string, Value> storages_;
};

bool starts_with_zip_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

Value unpickle_checkpoint(const std::string& path) {
  // Checked up front so that legacy pickles get a clear message instead of a zip reader error.
  if (!starts_with_zip_magic(path))
    fail("{}: not a torch.save zip checkpoint (no zip signature; files from torch.save before PyTorch 1.6 or with "
         "_use_new_zipfile_serialization=False must be re-saved)",
         path);
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    if (archive.hasRecord("byteorder")) {
      auto [data, size] = archive.getRecord("byteorder");
      const std::string order(static_cast<const char*>(data.get()), size);
      if (order != "little") bad("byte order '{}' is not supported", order);
    }
    auto [pickle, size] = archive.getRecord("data.pkl");
    return Unpickler(static_cast<const uint8_t*>(pickle.get()), size, archive).run();
  } catch (const FormatError& e) {
    fail("{}: not a torch.save zip checkpoint ({})", path, e.what());
  } catch (const c10::Error& e) {
    fail("{}: not a torch.save zip checkpoint ({})", path, e.what_without_backtrace());
  }
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> load_torch_bin(const std::string& path) {
  const Value root = unpickle_checkpoint(path);
  if (root->kind != PyValue::Kind::Dict)
    fail("{}: checkpoint holds a value of type {}, not a dict of tensors", path, kind_name(root->kind));

  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != PyValue::Kind::Str) fail("{}: checkpoint has a key of type {}; expected str keys", path, kind_name(key->kind));
    if (value->kind != PyValue::Kind::Tensor)
      fail("{}: entry '{}' is of type {}, not a tensor (expected a dict of tensors)", path, key->text,
           kind_name(value->kind));
    tensors.emplace_back(key->text, value->tensor);
  }
  return tensors;
}

}  // namespace peft::io
