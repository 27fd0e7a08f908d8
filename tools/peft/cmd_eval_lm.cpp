// peft eval for causal-LM tasks: greedy generation for every prompt of the split, scored against all of its
// references with the E2E metrics (BLEU, NIST, METEOR, ROUGE-L, CIDEr), plus the teacher-forced loss and
// perplexity; each prediction is written with its references as JSONL.
#include <nlohmann/json.hpp>

#include "io_helpers.h"
#include "lm_task_data.h"
#include "peft/error.h"
#include "peft/eval/nlg_metrics.h"
#include "peft/generate/text_generation.h"
#include "peft/train/adapted.h"
#include "peft/train/evaluate.h"

namespace peft::cli {

void run_eval_lm(train::LoadedTask& t, const LmEvalOptions& o) {
  const std::string task = t.task.data_format.empty() ? t.task.name : t.task.data_format;
  LmTaskSource source{task, o.data_dir, "", ""};
  if (task != "e2e") {
    if (o.file.empty()) fail("--file FILE.jsonl is required to evaluate a --task {} run", task);
    source.dev_file = o.file;
  } else if (!o.file.empty()) {
    fail("--file is for lm/chat tasks; E2E reads --data DIR");
  }
  data::LmDataset set =
      load_lm_split(source, task == "e2e" ? o.split : "dev", *t.tokenizer, t.chat_template, t.base_model);
  if (o.samples) set = data::sample(set, o.samples, 0);
  const data::LmTokenizeOptions tokenize = lm_tokenize_options(t.max_seq_length, *t.tokenizer, task);

  nlohmann::json metrics = train::evaluate(t.trainable, data::tokenize_lm(set, *t.tokenizer, tokenize), {"loss"},
                                           o.batch_size, t.model->model()->reference_weight().device())
                               .metrics;
  t.model->model()->eval();
  TextGenerationOptions g;
  g.generation.max_new_tokens = o.max_new_tokens;
  set_stop_and_pad(g.generation, *t.tokenizer);
  if (task == "e2e") g.stop_strings = {"\n"};  // one sentence per MR
  const auto prompts = data::tokenize_prompts(set, *t.tokenizer, tokenize);
  std::vector<std::string> predictions;
  for (size_t start = 0; start < prompts.size(); start += o.batch_size) {
    const size_t end = std::min(prompts.size(), start + o.batch_size);
    for (auto& r : generate_text(*t.model, *t.tokenizer, {prompts.begin() + long(start), prompts.begin() + long(end)}, g))
      predictions.push_back(r.text);
  }
  for (auto& p : predictions) {  // the completion starts after the separator's space
    const size_t first = p.find_first_not_of(' ');
    p = first == std::string::npos ? "" : p.substr(first);
  }
  eval::References references;
  for (const auto& e : set.examples) references.push_back(e.references);
  metrics.update(eval::to_json(eval::score_corpus(predictions, references)));
  metrics["task"] = t.task.name;
  metrics["data"] = set.source;
  metrics["decoding"] = fmt::format("greedy, max {} new tokens", o.max_new_tokens);
  if (!o.predictions.empty())
    write_output(o.predictions, [&](std::ostream& out) {
      for (size_t i = 0; i < predictions.size(); ++i)
        out << nlohmann::json{{"input", set.examples[i].prompt}, {"prediction", predictions[i]},
                              {"references", set.examples[i].references}}
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << "\n";
    });
  write_output(o.output, [&](std::ostream& out) { out << metrics.dump(2) << "\n"; });
}

}  // namespace peft::cli
