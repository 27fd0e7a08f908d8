// peft tokenize MODEL: text lines in (or tab-separated pairs), token ids out. MODEL may be a tokenizer-only
// folder or a GGUF file.
#include <nlohmann/json.hpp>

#include "commands.h"
#include "io_helpers.h"
#include "peft/error.h"
#include "peft/models/model_tokenizer.h"
#include "peft/tokenize/tokenizer.h"

namespace peft::cli {
namespace {

struct TokenizeArgs {
  std::string model, input = "-", output = "-", format = "ids", truncation, padding = "none";
  size_t max_length = 0;
  bool pairs = false, no_special_tokens = false;
};

tok::EncodeOptions encode_options(const TokenizeArgs& args) {
  tok::EncodeOptions options;
  options.add_special_tokens = !args.no_special_tokens;
  if (args.max_length > 0) options.max_length = args.max_length;
  if (args.truncation == "longest_first") options.truncation = tok::Truncation::LongestFirst;
  else if (args.truncation == "only_first") options.truncation = tok::Truncation::OnlyFirst;
  else if (args.truncation == "only_second") options.truncation = tok::Truncation::OnlySecond;
  else if (args.truncation == "none") options.truncation = tok::Truncation::None;
  if (args.padding == "longest") options.padding = tok::Padding::Longest;
  else if (args.padding == "max_length") options.padding = tok::Padding::MaxLength;
  return options;
}

void run_tokenize(const TokenizeArgs& args) {
  auto tokenizer = load_model_tokenizer(args.model).tokenizer;
  const auto options = encode_options(args);
  const auto lines = read_lines(args.input);
  std::vector<tok::Encoding> encodings;
  if (args.pairs) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (size_t i = 0; i < lines.size(); ++i) {
      const size_t tab = lines[i].find('\t');
      if (tab == std::string::npos)
        fail("{}: line {} has no tab; --pairs expects \"first<TAB>second\"", args.input == "-" ? "stdin" : args.input,
             i + 1);
      pairs.emplace_back(lines[i].substr(0, tab), lines[i].substr(tab + 1));
    }
    encodings = tokenizer->encode_batch(pairs, options);
  } else {
    encodings = tokenizer->encode_batch(lines, options);
  }
  write_output(args.output, [&](std::ostream& out) {
    for (auto& e : encodings) {
      if (args.format == "jsonl") {
        out << nlohmann::json{{"ids", e.ids}, {"type_ids", e.type_ids}, {"attention_mask", e.attention_mask},
                              {"tokens", e.tokens}}
                   .dump()
            << "\n";
      } else if (args.format == "tokens") {
        out << fmt::format("{}\n", fmt::join(e.tokens, " "));
      } else {
        out << fmt::format("{}\n", fmt::join(e.ids, " "));
      }
    }
  });
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Tokenize text lines with a model's tokenizer (one line of ids each)");
  cmd->add_option("model", args->model, "model or tokenizer folder, .gguf file or installed model name")->required();
  cmd->add_option("-i,--input", args->input, "input file, one text per line (default: stdin)");
  cmd->add_option("-o,--output", args->output, "output file (default: stdout)");
  cmd->add_option("--format", args->format, "ids | tokens | jsonl (ids, type_ids, attention_mask, tokens)")
      ->check(CLI::IsMember({"ids", "tokens", "jsonl"}));
  cmd->add_flag("--pairs", args->pairs, "each line is a text pair separated by a tab");
  cmd->add_option("--max-length", args->max_length, "truncate to this many tokens (special tokens included)");
  cmd->add_option("--truncation", args->truncation, "longest_first | only_first | only_second | none")
      ->check(CLI::IsMember({"longest_first", "only_first", "only_second", "none"}));
  cmd->add_option("--padding", args->padding, "none | longest | max_length")
      ->check(CLI::IsMember({"none", "longest", "max_length"}));
  cmd->add_flag("--no-special-tokens", args->no_special_tokens, "do not add the special tokens ([CLS]/[SEP], <s>, bos)");
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace peft::cli
