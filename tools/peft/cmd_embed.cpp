// peft embed MODEL: sentence embeddings as JSON lines (mean pooling + L2 normalisation, as
// sentence-transformers computes them for all-MiniLM-L6-v2).
#include <filesystem>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io_helpers.h"
#include "peft/error.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/models/model_tokenizer.h"
#include "peft/tokenize/tokenizer.h"

namespace fs = std::filesystem;

namespace peft::cli {
namespace {

struct EmbedArgs {
  std::string model, input = "-", output = "-", device = "cpu", pooling = "mean";
  size_t max_length = 0, batch_size = 32;
  bool no_normalize = false;
};

void run_embed(const EmbedArgs& args) {
  if (args.batch_size == 0) fail("--batch-size must be at least 1");
  const torch::Device device = parse_device(args.device);
  const fs::path dir = resolve_model_dir(args.model);
  auto tokenizer = tok::load_tokenizer(dir.string());
  LoadOptions load;
  load.device = device;
  EncoderModel encoder = load_encoder_model(dir.string(), load);
  const size_t max_length = args.max_length ? args.max_length : sentence_max_length(dir.string(), *tokenizer, encoder->config());

  const auto lines = read_lines(args.input);
  // Sort by length so batches carry little padding; results are written back in input order.
  std::vector<size_t> order(lines.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lines[a].size() < lines[b].size(); });

  std::vector<std::vector<float>> embeddings(lines.size());
  torch::InferenceMode inference;
  tok::EncodeOptions options;
  options.max_length = max_length;
  options.truncation = tok::Truncation::LongestFirst;
  options.padding = tok::Padding::Longest;
  for (size_t start = 0; start < order.size(); start += args.batch_size) {
    const size_t end = std::min(order.size(), start + args.batch_size);
    std::vector<std::string> texts;
    for (size_t i = start; i < end; ++i) texts.push_back(lines[order[i]]);
    auto encodings = tokenizer->encode_batch(texts, options);
    const int64_t rows = static_cast<int64_t>(encodings.size()), cols = static_cast<int64_t>(encodings[0].size());
    auto ids = torch::empty({rows, cols}, torch::kLong), mask = torch::empty({rows, cols}, torch::kLong),
         types = torch::empty({rows, cols}, torch::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(encodings[r].ids.begin(), encodings[r].ids.end(), ids[r].data_ptr<int64_t>());
      std::copy(encodings[r].attention_mask.begin(), encodings[r].attention_mask.end(), mask[r].data_ptr<int64_t>());
      std::copy(encodings[r].type_ids.begin(), encodings[r].type_ids.end(), types[r].data_ptr<int64_t>());
    }
    ModelInput in{ids.to(device), mask.to(device), types.to(device), /*skip_padding_columns=*/true};
    EncoderOutput out = encoder->forward(in);
    torch::Tensor pooled;
    if (args.pooling == "cls") {
      pooled = out.last_hidden_state.select(1, 0);
      if (!args.no_normalize) pooled = torch::nn::functional::normalize(pooled, torch::nn::functional::NormalizeFuncOptions().dim(1));
    } else {
      pooled = mean_pool(out.last_hidden_state, in.attention_mask, !args.no_normalize);
    }
    pooled = pooled.to(torch::kCPU, torch::kFloat).contiguous();
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = pooled[r].data_ptr<float>();
      embeddings[order[start + r]].assign(row, row + pooled.size(1));
    }
  }
  write_output(args.output, [&](std::ostream& out) {
    for (size_t i = 0; i < lines.size(); ++i)
      out << fmt::format("{{\"index\": {}, \"embedding\": [{}]}}\n", i, fmt::join(embeddings[i], ", "));
  });
}

}  // namespace

void add_embed_command(CLI::App& app) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* cmd = app.add_subcommand("embed", "Sentence embeddings of text lines, as JSON lines");
  cmd->add_option("model", args->model, "model folder or installed model name")->required();
  cmd->add_option("-i,--input", args->input, "input file, one text per line (default: stdin)");
  cmd->add_option("-o,--output", args->output, "output file (default: stdout)");
  cmd->add_option("--max-length", args->max_length,
                  "truncate inputs to this many tokens (default: the model's max_seq_length)");
  cmd->add_option("--batch-size", args->batch_size, "texts per forward pass (default 32)");
  cmd->add_option("--pooling", args->pooling, "mean | cls")->check(CLI::IsMember({"mean", "cls"}));
  cmd->add_flag("--no-normalize", args->no_normalize, "skip L2 normalisation");
  cmd->add_option("--device", args->device, "cpu | cuda | cuda:N");
  cmd->callback([args] { run_embed(*args); });
}

}  // namespace peft::cli
