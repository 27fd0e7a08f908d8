#pragma once
// The parts of a SentencePiece ModelProto (sentencepiece_model.proto) that the tokenizer needs,
// read and written in the protobuf wire format by hand: pieces, the trainer spec's model type, byte
// fallback and special pieces, the normalizer spec. Torch-free, protobuf-free.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peft::tok {

struct SpmModelProto {
  enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  enum ModelType { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  struct Piece {
    std::string piece;
    float score = 0;
    int type = kNormal;
  };
  struct TrainerSpec {
    int model_type = kUnigram;
    bool byte_fallback = false;
    bool treat_whitespace_as_suffix = false;
    int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
    std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  };
  struct NormalizerSpec {
    std::string name;
    std::string precompiled_charsmap;
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
    bool escape_whitespaces = true;
  };

  std::vector<Piece> pieces;
  TrainerSpec trainer;
  NormalizerSpec normalizer;
  // The trainer spec as read (every field, also those not parsed above); written back verbatim
  // when set, else built from `trainer`.
  std::optional<std::string> raw_trainer_spec;

  // Parses a serialized ModelProto; peft::Error naming `source` when it is not one.
  static SpmModelProto parse(std::string_view bytes, const std::string& source);
  // pieces, trainer spec, normalizer spec (no self-test data, no denormalizer).
  std::string serialize() const;
};

}  // namespace peft::tok
