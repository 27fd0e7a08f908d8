// peft generate MODEL [--adapter DIR] --prompt TEXT | --input FILE: continuations of a causal LM,
// greedy unless a sampling option is given (as HF's generate). One --prompt streams its continuation
// to stdout; several prompts or --input write JSONL (prompt, text, token_ids, finish_reason).
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io_helpers.h"
#include "peft/error.h"
#include "peft/generate/chat_template.h"
#include "peft/generate/text_generation.h"
#include "peft/methods/adapter_io.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"
#include "peft/models/model_tokenizer.h"

namespace peft::cli {
namespace {

struct GenerateArgs {
  std::string model, adapter, input, output = "-", system, truncate = "none", dtype = "float32", device = "cpu";
  std::vector<std::string> prompts, stop;
  std::vector<int64_t> stop_token_ids;
  int64_t max_new_tokens = 64, top_k = 0, batch_size = 8;
  double temperature = 1.0, top_p = 1.0, min_p = 0.0, repetition_penalty = 1.0;
  std::optional<uint64_t> seed;
  bool do_sample = false, chat = false, no_special_tokens = false, keep_special_tokens = false;
};

// A prompt as given: plain text, or chat messages (from --chat or a JSONL "messages" list).
struct PromptInput {
  std::string text;  // what JSONL's "prompt" echoes
  std::vector<ChatMessage> messages;
};

std::vector<PromptInput> read_prompts(const GenerateArgs& args) {
  std::vector<PromptInput> prompts;
  for (const auto& p : args.prompts) prompts.push_back({p, {}});
  if (args.input.empty()) return prompts;
  const bool jsonl = args.input.size() > 6 && args.input.substr(args.input.size() - 6) == ".jsonl";
  const auto lines = read_lines(args.input);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    if (!jsonl) {
      prompts.push_back({lines[i], {}});
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception&) {
      fail("{}: line {} is not JSON (a .jsonl input holds {{\"prompt\": ...}} or {{\"messages\": [...]}} per line)",
           args.input, i + 1);
    }
    PromptInput p;
    if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
      p.text = j["prompt"].get<std::string>();
    } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
      for (const auto& m : j["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
            !m["content"].is_string())
          fail("{}: line {}: every message needs string \"role\" and \"content\"", args.input, i + 1);
        p.messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
      if (p.messages.empty()) fail("{}: line {}: \"messages\" is empty", args.input, i + 1);
      p.text = p.messages.back().content;
    } else {
      fail("{}: line {} has neither a string \"prompt\" nor a \"messages\" list", args.input, i + 1);
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

std::vector<int64_t> encode_prompt(const PromptInput& p, const GenerateArgs& args, const ModelTokenizer& mt) {
  const tok::Tokenizer& tokenizer = *mt.tokenizer;
  tok::EncodeOptions options;
  options.truncation = tok::Truncation::None;
  if (args.chat || !p.messages.empty()) {
    if (mt.chat_template.empty())
      fail("{}: the model has no chat template (tokenizer_config.json's chat_template or the GGUF's "
           "tokenizer.chat_template); drop --chat",
           mt.source);
    std::vector<ChatMessage> messages = p.messages;
    if (messages.empty()) {
      if (!args.system.empty()) messages.push_back({"system", args.system});
      messages.push_back({"user", p.text});
    }
    return encode_chat(tokenizer, mt.chat_template, messages);
  }
  options.add_special_tokens = !args.no_special_tokens;
  return tokenizer.encode(p.text, std::nullopt, options).ids;
}

void run_generate(GenerateArgs args) {
  if (args.prompts.empty() && args.input.empty()) fail("--prompt or --input is required");
  if (!args.system.empty() && !args.chat) fail("--system needs --chat");
  if (args.batch_size < 1) fail("--batch-size must be at least 1");
  LoadOptions load;
  load.device = parse_device(args.device);
  load.dtype = args.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat;
  auto lm = load_causal_lm(args.model, load);
  const ModelTokenizer mt = load_model_tokenizer(args.model);
  check_tokenizer_fits(mt, lm->arch().vocab_size);
  AdaptedModel model(std::static_pointer_cast<Model>(lm));
  if (!args.adapter.empty()) load_adapter(model, args.adapter);
  lm->eval();

  TextGenerationOptions options;
  GenerationOptions& g = options.generation;
  g.max_new_tokens = args.max_new_tokens;
  g.do_sample = args.do_sample;
  g.temperature = args.temperature;
  g.top_k = args.top_k;
  g.top_p = args.top_p;
  g.min_p = args.min_p;
  g.repetition_penalty = args.repetition_penalty;
  g.seed = args.seed;
  set_stop_and_pad(g, *mt.tokenizer, args.stop_token_ids);
  options.stop_strings = args.stop;
  options.skip_special_tokens = !args.keep_special_tokens;

  const std::vector<PromptInput> prompts = read_prompts(args);
  if (prompts.empty()) fail("{}: no prompts in the input", args.input);
  const int64_t context = lm->arch().max_positions;
  std::vector<std::vector<int64_t>> ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> p = encode_prompt(prompts[i], args, mt);
    if (p.empty()) fail("prompt {} encodes to no tokens", i + 1);
    if (context > 0 && int64_t(p.size()) >= context) {
      if (args.truncate != "left")
        fail("prompt {} has {} tokens, more than the model's context of {} allows; shorten it or pass --truncate left",
             i + 1, p.size(), context);
      p.erase(p.begin(), p.end() - (context - 1));
    }
    ids.push_back(std::move(p));
  }

  const bool stream = prompts.size() == 1 && args.input.empty() && (args.output.empty() || args.output == "-");
  if (stream) {
    generate_text(model, *mt.tokenizer, ids, options, [](size_t, const std::string& piece) {
      std::cout << piece << std::flush;
    });
    std::cout << "\n";
    return;
  }
  std::vector<GeneratedText> results;
  for (size_t start = 0; start < ids.size(); start += size_t(args.batch_size)) {
    const size_t end = std::min(ids.size(), start + size_t(args.batch_size));
    auto batch = generate_text(model, *mt.tokenizer, {ids.begin() + long(start), ids.begin() + long(end)}, options);
    for (auto& r : batch) results.push_back(std::move(r));
  }
  write_output(args.output, [&](std::ostream& out) {
    for (size_t i = 0; i < results.size(); ++i)
      out << nlohmann::json{{"prompt", prompts[i].text},
                            {"text", results[i].text},
                            {"token_ids", results[i].token_ids},
                            {"finish_reason", results[i].finish_reason}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
  });
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue prompts with a causal language model (greedy unless sampling)");
  cmd->add_option("model", args->model, "model folder, .gguf file or installed model name")->required();
  cmd->add_option("--adapter", args->adapter, "PEFT adapter folder (LoRA, IA3, prefix, ...) to apply");
  cmd->add_option("-p,--prompt", args->prompts, "prompt text (repeat for a batch)");
  cmd->add_option("-i,--input", args->input,
                  "prompts, one per line; a .jsonl file holds {\"prompt\": ...} or {\"messages\": [...]} per line");
  cmd->add_option("-o,--output", args->output, "JSONL output for batches (default: stdout)");
  cmd->add_option("-n,--max-new-tokens", args->max_new_tokens, "tokens to generate at most")
      ->check(CLI::NonNegativeNumber);
  auto sampling = [&](CLI::Option* o) { o->each([args](const std::string&) { args->do_sample = true; }); };
  cmd->add_flag("--do-sample", args->do_sample, "sample (with the defaults temperature 1, no top-k/top-p)");
  sampling(cmd->add_option("--temperature", args->temperature, "sampling temperature (implies sampling)")
               ->check(CLI::PositiveNumber));
  sampling(cmd->add_option("--top-k", args->top_k, "keep the k most likely tokens (implies sampling)")
               ->check(CLI::NonNegativeNumber));
  sampling(cmd->add_option("--top-p", args->top_p, "nucleus sampling mass (implies sampling)")
               ->check(CLI::Range(0.0, 1.0)));
  sampling(cmd->add_option("--min-p", args->min_p, "drop tokens below min-p x the top probability (implies sampling)")
               ->check(CLI::Range(0.0, 1.0)));
  cmd->add_option("--repetition-penalty", args->repetition_penalty, "HF's repetition penalty (1: off)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "seed for sampling");
  cmd->add_option("--stop", args->stop, "stop string (repeatable): the text ends before it");
  cmd->add_option("--stop-token-id", args->stop_token_ids, "stop token ids (default: the tokenizer's eos)");
  cmd->add_flag("--chat", args->chat, "wrap each prompt as a user message in the model's chat template");
  cmd->add_option("--system", args->system, "system message for --chat");
  cmd->add_flag("--no-special-tokens", args->no_special_tokens, "do not add bos/eos when encoding plain prompts");
  cmd->add_flag("--keep-special-tokens", args->keep_special_tokens, "keep special tokens in the decoded text");
  cmd->add_option("--truncate", args->truncate, "none (prompts beyond the context are an error) | left")
      ->check(CLI::IsMember({"none", "left"}));
  cmd->add_option("--batch-size", args->batch_size, "prompts generated together (left-padded)");
  cmd->add_option("--dtype", args->dtype, "float32 | bfloat16 (weights in memory)")
      ->check(CLI::IsMember({"float32", "bfloat16"}));
  cmd->add_option("--device", args->device, "cpu | cuda | cuda:N");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace peft::cli
