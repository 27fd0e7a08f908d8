#include "lm_task_data.h"

#include "peft/error.h"
#include "peft/generate/chat_template.h"

namespace peft::cli {

data::LmDataset load_lm_split(const LmTaskSource& s, const std::string& split, const tok::Tokenizer& t,
                              const std::string& chat_template, const std::string& model) {
  if (s.task == "e2e") {
    if (s.data_dir.empty()) fail("--data is required for --task e2e (the E2E release folder with trainset.csv)");
    return data::load_e2e_lm(s.data_dir, split);
  }
  const std::string& file = split == "train" ? s.train_file : s.dev_file;
  if (file.empty()) fail("--task {} needs --{} FILE.jsonl", s.task, split == "train" ? "train" : "dev");
  if (s.task == "lm") return data::load_lm_jsonl(file, s.prompt_column, s.completion_column);
  if (chat_template.empty()) fail("{}: the model has no chat template, so --task chat cannot render {}", model, file);
  ChatTemplateOptions options;
  if (auto id = t.bos_id()) options.bos_token = t.id_to_token(*id);
  if (auto id = t.eos_id()) options.eos_token = t.id_to_token(*id);
  const std::string& source = chat_template;
  return data::load_chat_jsonl(file, [&](const std::vector<data::ChatTurn>& turns, bool generation_prompt) {
    std::vector<ChatMessage> messages;
    for (const auto& turn : turns) messages.push_back({turn.role, turn.content});
    ChatTemplateOptions o = options;
    o.add_generation_prompt = generation_prompt;
    return render_chat_template(source, messages, o);
  });
}

data::LmTokenizeOptions lm_tokenize_options(size_t max_seq_length, const tok::Tokenizer& tokenizer, const std::string& task) {
  data::LmTokenizeOptions o;
  o.max_seq_length = max_seq_length;
  o.add_special_tokens = task != "chat";
  // A chat completion ends with the template's end-of-turn marker already (the eos of instruct models).
  if (task != "chat") o.eos_id = tokenizer.eos_id();
  return o;
}

}  // namespace peft::cli
