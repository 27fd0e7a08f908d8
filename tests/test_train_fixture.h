#pragma once
// Shared by the trainer tests: the tiny BERT fixture with a vocabulary of its own, and a synthetic
// sentiment task it learns in seconds (a sentence is positive when it holds a "good" word).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "peft/data/dataset.h"
#include "test_util.h"

namespace peft::test {

inline const std::vector<std::string> kGood{"good", "great", "fine", "nice", "lovely", "superb"};
inline const std::vector<std::string> kBad{"bad", "awful", "poor", "sad", "boring", "ugly"};
inline const std::vector<std::string> kFiller{"the", "movie", "was", "plot", "and", "very", "a", "story"};

// tiny-bert (vocab 99) plus a vocab.txt of our own: a model folder the tokenizer can load.
inline std::filesystem::path tiny_model_dir() {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / fmt::format("peft-train-tiny-{}", ::getpid());
    fs::create_directories(d);
    const fs::path src = fixtures_dir() / "encoder" / "tiny-bert";
    fs::copy_file(src / "config.json", d / "config.json", fs::copy_options::overwrite_existing);
    fs::copy_file(src / "model.safetensors", d / "model.safetensors", fs::copy_options::overwrite_existing);
    std::ofstream vocab(d / "vocab.txt");
    std::vector<std::string> words{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (auto* list : {&kGood, &kBad, &kFiller}) words.insert(words.end(), list->begin(), list->end());
    for (int i = 0; words.size() < 99; ++i) words.push_back(fmt::format("w{}", i));
    for (auto& w : words) vocab << w << "\n";
    return d;
  }();
  return dir;
}

inline data::Dataset synthetic_sentiment(size_t n, uint64_t seed) {
  data::Dataset d;
  d.labels = {"0", "1"};
  uint64_t x = seed;
  auto next = [&] { return (x = x * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  for (size_t i = 0; i < n; ++i) {
    const bool positive = next() % 2;
    std::string text;
    for (size_t k = 0, len = 2 + next() % 5; k < len; ++k) text += kFiller[next() % kFiller.size()] + " ";
    text += (positive ? kGood : kBad)[next() % kGood.size()];
    d.examples.push_back({text, std::nullopt, positive ? 1.0f : 0.0f, i + 1});
  }
  return d;
}

// The same data as a TSV file with header "sentence<TAB>label" (labels neg/pos).
inline void write_synthetic_tsv(const std::filesystem::path& path, size_t n, uint64_t seed) {
  std::ofstream out(path);
  out << "sentence\tlabel\n";
  for (const auto& ex : synthetic_sentiment(n, seed).examples) out << ex.text << "\t" << (*ex.label > 0 ? "pos" : "neg") << "\n";
}

}  // namespace peft::test
