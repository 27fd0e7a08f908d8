#include "tokenize/spm_proto.h"

#include <cstring>

#include "peft/error.h"

namespace peft::tok {
namespace {

enum SpmWireType { kWireVarint = 0, kWireFixed64 = 1, kWireLengthDelimited = 2, kWireFixed32 = 5 };

// A protobuf message, field by field. Errors name the source and the byte offset.
class SpmWireReader {
 public:
  SpmWireReader(std::string_view bytes, const std::string& source, const char* message, size_t base = 0)
      : bytes_(bytes), source_(source), message_(message), base_(base) {}

  bool done() const { return pos_ >= bytes_.size(); }

  // The next field's number and wire type.
  void next(uint32_t& field, int& wire) {
    const uint64_t tag = varint();
    field = static_cast<uint32_t>(tag >> 3);
    wire = static_cast<int>(tag & 7);
    if (field == 0) error("field number 0");
  }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) error("truncated varint");
      const auto b = static_cast<unsigned char>(bytes_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    error("varint longer than 10 bytes");
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > bytes_.size() - pos_) error("length-delimited field runs past the end");
    std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  float fixed32_float() {
    if (bytes_.size() - pos_ < 4) error("truncated 32-bit field");
    uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u |= static_cast<uint32_t>(static_cast<unsigned char>(bytes_[pos_ + i])) << (8 * i);
    pos_ += 4;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }

  void skip(int wire) {
    switch (wire) {
      case kWireVarint: varint(); return;
      case kWireFixed64:
        if (bytes_.size() - pos_ < 8) error("truncated 64-bit field");
        pos_ += 8;
        return;
      case kWireLengthDelimited: bytes(); return;
      case kWireFixed32:
        if (bytes_.size() - pos_ < 4) error("truncated 32-bit field");
        pos_ += 4;
        return;
      default: error("unsupported wire type " + std::to_string(wire));
    }
  }

  void expect(int wire, int want, uint32_t field) {
    if (wire != want) error("field " + std::to_string(field) + " has wire type " + std::to_string(wire));
  }

  size_t offset() const { return base_ + pos_; }

  [[noreturn]] void error(const std::string& what) const {
    fail("{} is not a valid SentencePiece model: {} in {} at byte {}", source_, what, message_, base_ + pos_);
  }

 private:
  std::string_view bytes_;
  const std::string& source_;
  const char* message_;
  size_t base_;
  size_t pos_ = 0;
};

int32_t spm_as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

SpmModelProto::Piece spm_parse_piece(std::string_view bytes, const std::string& source, size_t base) {
  SpmWireReader r(bytes, source, "a piece", base);
  SpmModelProto::Piece p;
  bool has_piece = false;
  while (!r.done()) {
    uint32_t field;
    int wire;
    r.next(field, wire);
    if (field == 1) {
      r.expect(wire, kWireLengthDelimited, field);
      p.piece = std::string(r.bytes());
      has_piece = true;
    } else if (field == 2) {
      r.expect(wire, kWireFixed32, field);
      p.score = r.fixed32_float();
    } else if (field == 3) {
      r.expect(wire, kWireVarint, field);
      p.type = spm_as_int32(r.varint());
      if (p.type < 1 || p.type > 6) r.error("piece type " + std::to_string(p.type));
    } else {
      r.skip(wire);
    }
  }
  if (!has_piece) r.error("a piece without its text");
  return p;
}

void spm_parse_trainer(std::string_view bytes, const std::string& source, size_t base, SpmModelProto::TrainerSpec& t) {
  SpmWireReader r(bytes, source, "the trainer spec", base);
  while (!r.done()) {
    uint32_t field;
    int wire;
    r.next(field, wire);
    const auto int_field = [&](int& out) {
      r.expect(wire, kWireVarint, field);
      out = spm_as_int32(r.varint());
    };
    const auto bool_field = [&](bool& out) {
      r.expect(wire, kWireVarint, field);
      out = r.varint() != 0;
    };
    const auto string_field = [&](std::string& out) {
      r.expect(wire, kWireLengthDelimited, field);
      out = std::string(r.bytes());
    };
    switch (field) {
      case 3: int_field(t.model_type); break;
      case 24: bool_field(t.treat_whitespace_as_suffix); break;
      case 35: bool_field(t.byte_fallback); break;
      case 40: int_field(t.unk_id); break;
      case 41: int_field(t.bos_id); break;
      case 42: int_field(t.eos_id); break;
      case 43: int_field(t.pad_id); break;
      case 45: string_field(t.unk_piece); break;
      case 46: string_field(t.bos_piece); break;
      case 47: string_field(t.eos_piece); break;
      case 48: string_field(t.pad_piece); break;
      default: r.skip(wire);
    }
  }
}

void spm_parse_normalizer(std::string_view bytes, const std::string& source, size_t base,
                      SpmModelProto::NormalizerSpec& n) {
  SpmWireReader r(bytes, source, "the normalizer spec", base);
  while (!r.done()) {
    uint32_t field;
    int wire;
    r.next(field, wire);
    if (field == 1 || field == 2) {
      r.expect(wire, kWireLengthDelimited, field);
      (field == 1 ? n.name : n.precompiled_charsmap) = std::string(r.bytes());
    } else if (field >= 3 && field <= 5) {
      r.expect(wire, kWireVarint, field);
      const bool v = r.varint() != 0;
      (field == 3 ? n.add_dummy_prefix : field == 4 ? n.remove_extra_whitespaces : n.escape_whitespaces) = v;
    } else {
      r.skip(wire);
    }
  }
}

// ---- writing ----

void spm_put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void spm_put_tag(std::string& out, uint32_t field, int wire) { spm_put_varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void spm_put_bytes(std::string& out, uint32_t field, std::string_view s) {
  spm_put_tag(out, field, kWireLengthDelimited);
  spm_put_varint(out, s.size());
  out.append(s);
}
// int32 fields are written as 64-bit two's complement varints, as protobuf does for negatives.
void spm_put_int(std::string& out, uint32_t field, int64_t v) {
  spm_put_tag(out, field, kWireVarint);
  spm_put_varint(out, static_cast<uint64_t>(v));
}
void spm_put_float(std::string& out, uint32_t field, float f) {
  spm_put_tag(out, field, kWireFixed32);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((u >> (8 * i)) & 0xFF);
}

}  // namespace

SpmModelProto SpmModelProto::parse(std::string_view bytes, const std::string& source) {
  SpmModelProto m;
  SpmWireReader r(bytes, source, "the model");
  while (!r.done()) {
    uint32_t field;
    int wire;
    r.next(field, wire);
    if (field >= 1 && field <= 3) {
      r.expect(wire, kWireLengthDelimited, field);
      const std::string_view sub = r.bytes();
      const size_t start = r.offset() - sub.size();
      if (field == 1) m.pieces.push_back(spm_parse_piece(sub, source, start));
      if (field == 2) {
        spm_parse_trainer(sub, source, start, m.trainer);
        m.raw_trainer_spec = std::string(sub);
      }
      if (field == 3) spm_parse_normalizer(sub, source, start, m.normalizer);
    } else {
      r.skip(wire);  // self-test data, denormalizer spec, unknown fields
    }
  }
  if (m.pieces.empty()) fail("{} is not a valid SentencePiece model: it has no pieces", source);
  return m;
}

std::string SpmModelProto::serialize() const {
  std::string out, sub;
  for (const Piece& p : pieces) {
    sub.clear();
    spm_put_bytes(sub, 1, p.piece);
    spm_put_float(sub, 2, p.score);
    if (p.type != kNormal) spm_put_int(sub, 3, p.type);
    spm_put_bytes(out, 1, sub);
  }
  if (raw_trainer_spec) {
    spm_put_bytes(out, 2, *raw_trainer_spec);
  } else {
    sub.clear();
    spm_put_int(sub, 3, trainer.model_type);
    if (trainer.treat_whitespace_as_suffix) spm_put_int(sub, 24, 1);
    spm_put_int(sub, 35, trainer.byte_fallback ? 1 : 0);
    spm_put_int(sub, 40, trainer.unk_id);
    spm_put_int(sub, 41, trainer.bos_id);
    spm_put_int(sub, 42, trainer.eos_id);
    spm_put_int(sub, 43, trainer.pad_id);
    spm_put_bytes(sub, 45, trainer.unk_piece);
    spm_put_bytes(sub, 46, trainer.bos_piece);
    spm_put_bytes(sub, 47, trainer.eos_piece);
    spm_put_bytes(sub, 48, trainer.pad_piece);
    spm_put_bytes(out, 2, sub);
  }
  sub.clear();
  spm_put_bytes(sub, 1, normalizer.name);
  if (!normalizer.precompiled_charsmap.empty()) spm_put_bytes(sub, 2, normalizer.precompiled_charsmap);
  spm_put_int(sub, 3, normalizer.add_dummy_prefix ? 1 : 0);
  spm_put_int(sub, 4, normalizer.remove_extra_whitespaces ? 1 : 0);
  spm_put_int(sub, 5, normalizer.escape_whitespaces ? 1 : 0);
  spm_put_bytes(out, 3, sub);
  return out;
}

}  // namespace peft::tok
