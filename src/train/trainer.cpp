#include "peft/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/random.h"
#include "peft/train/checkpoint.h"
#include "peft/train/evaluate.h"
#include "peft/train/metrics.h"

namespace fs = std::filesystem;

namespace peft::train {
namespace {

using Clock = std::chrono::steady_clock;

// metrics.jsonl: appended line by line. On resume, lines after the checkpoint's step are dropped so
// the log reads as if the run had never stopped.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, bool keep, int64_t keep_up_to_step) : path_(path) {
    std::string kept;
    std::ifstream in(path);
    for (std::string line; keep && std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).value("step", int64_t{0}) <= keep_up_to_step) kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        // a line torn by a crash: drop it
      }
    }
    io::write_file_atomically(path, kept);
  }
  void write(const nlohmann::json& j) {
    std::ofstream out(path_, std::ios::app);
    out << j.dump() << "\n";
    if (!out) fail("{}: cannot write", path_);
  }

 private:
  std::string path_;
};

// What a batch's loss averages over: its labelled tokens for causal LMs (after the shift), else its rows.
double loss_items(const data::Batch& batch) {
  if (batch.labels.dim() == 2 && batch.labels.scalar_type() == torch::kLong)
    return batch.labels.narrow(1, 1, batch.labels.size(1) - 1).ne(-100).sum().item<double>();
  return double(batch.indices.size());
}

// This rank's contiguous share of a global batch (empty when the batch has fewer rows than ranks).
std::vector<size_t> rank_slice(const std::vector<size_t>& global, int rank, int world) {
  const size_t n = global.size(), begin = n * size_t(rank) / size_t(world), end = n * size_t(rank + 1) / size_t(world);
  return {global.begin() + static_cast<std::ptrdiff_t>(begin), global.begin() + static_cast<std::ptrdiff_t>(end)};
}

// Sums the gradients and the step's loss across ranks; adds the gradients' bytes to `bytes`. A tensor
// that got a gradient on no rank keeps none (AdamW skips it, as one process would); one that got a
// gradient on some rank gets the sum, zeros standing in for the ranks where it got none.
double sum_gradients(DataParallel& parallel, const std::vector<torch::Tensor>& params, double loss, int64_t& bytes) {
  const auto n = static_cast<int64_t>(params.size());
  auto flags = torch::zeros({n + 1}, torch::kDouble);
  auto f = flags.accessor<double, 1>();
  for (int64_t i = 0; i < n; ++i) f[i] = params[size_t(i)].grad().defined() ? 1.0 : 0.0;
  f[n] = loss;
  parallel.all_reduce_sum({flags});
  std::vector<torch::Tensor> grads;
  for (int64_t i = 0; i < n; ++i) {
    if (f[i] == 0) continue;
    torch::Tensor p = params[size_t(i)];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
    bytes += p.numel() * int64_t(p.element_size());
  }
  parallel.all_reduce_sum(grads);
  return f[n];
}

// The generators a checkpoint keeps: torch's default one (dropout; one per rank) and the methods' one.
std::string default_generator_key(int rank) { return rank == 0 ? "cpu" : fmt::format("cpu.rank{}", rank); }

RandomStates gather_random_states(DataParallel* parallel) {
  RandomStates states;
  torch::Tensor mine = at::detail::getDefaultCPUGenerator().get_state();
  if (parallel) {
    const torch::Tensor all = parallel->all_gather(mine);
    for (int r = 0; r < parallel->world_size(); ++r) states[default_generator_key(r)] = all[r].clone();
  } else {
    states[default_generator_key(0)] = mine;
  }
  states["methods"] = method_generator().get_state();
  return states;
}

void restore_random_states(const RandomStates& states, int rank, const std::string& run_dir) {
  const auto mine = states.find(default_generator_key(rank));
  if (mine == states.end())
    fail("{}: the latest checkpoint has no generator state for rank {} (was it written with fewer ranks?)",
         run_dir, rank);
  at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
  generator.set_state(mine->second);
  if (const auto methods = states.find("methods"); methods != states.end()) method_generator().set_state(methods->second);
}

nlohmann::json read_json_or_empty(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json::object();
  }
}

}  // namespace

nlohmann::json TrainOptions::to_json() const {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : lr_groups) {
    nlohmann::json j{{"pattern", g.pattern}, {"lr", g.lr}};
    if (g.weight_decay) j["weight_decay"] = *g.weight_decay;
    groups.push_back(j);
  }
  nlohmann::json out{{"epochs", epochs}, {"max_steps", max_steps}, {"batch_size", batch_size}, {"grad_accum", grad_accum},
          {"lr", lr}, {"weight_decay", weight_decay}, {"lr_groups", groups}, {"schedule", schedule_name(schedule)},
          {"warmup_ratio", warmup_ratio}, {"warmup_steps", warmup_steps}, {"max_grad_norm", max_grad_norm},
          {"eval_every", eval_every}, {"checkpoint_every", checkpoint_every}, {"patience", patience},
          {"eval_batch_size", eval_batch_size}, {"bucket_window", bucket_window}, {"seed", seed}};
  if (world_size() > 1) out["world_size"] = world_size();  // a single-process run.json stays as it was
  return out;
}

TrainResult train(const TrainJob& job, const TrainOptions& o, const TrainCallbacks& cb) {
  if (!job.model || !job.train) fail("train: model and training data are required");
  if (o.batch_size == 0 || o.grad_accum < 1) fail("train: batch size and gradient accumulation must be >= 1");
  if (job.train->size() == 0 || (job.train->labels.empty() && job.train->token_labels.empty()))
    fail("train: the training data has no labelled examples");
  TrainableModel& model = *job.model;
  const data::TokenizedDataset& train_data = *job.train;
  const fs::path run_dir = job.run_dir;
  DataParallel* parallel = o.parallel.get();
  const int rank = o.rank(), world = o.world_size();
  const bool main_rank = rank == 0;

  // ---- the plan: steps, warmup, batches ----
  // Every rank plans the same global batches (batch_size rows per rank) and takes its slice of each.
  const data::BatchOptions batching{o.batch_size * size_t(world), /*shuffle=*/true, o.bucket_window, o.seed};
  const auto batches_per_epoch =
      static_cast<int64_t>((train_data.size() + batching.batch_size - 1) / batching.batch_size);
  const int64_t steps_per_epoch = (batches_per_epoch + o.grad_accum - 1) / o.grad_accum;
  const int64_t total_steps = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch;
  const int64_t epochs = o.max_steps > 0 ? (o.max_steps + steps_per_epoch - 1) / steps_per_epoch : o.epochs;
  const int64_t warmup = o.warmup_steps > 0 ? o.warmup_steps
                                            : static_cast<int64_t>(std::ceil(o.warmup_ratio * double(total_steps)));
  if (total_steps <= 0) fail("train: nothing to do (epochs {} , max_steps {})", o.epochs, o.max_steps);

  // ---- optimizer and state (fresh, or from the latest checkpoint) ----
  // Dropout draws (a resumed run restores the generators instead): each rank its own masks, the
  // methods' routes and gates alike on every rank.
  torch::manual_seed(o.seed + uint64_t(rank));
  seed_method_generator(o.seed);
  OptimizerSetup opt = make_adamw(model.tensors, o.lr, o.weight_decay, o.lr_groups);
  std::vector<torch::Tensor> params;
  for (const auto& t : model.tensors) params.push_back(t.tensor);
  TrainState st;
  TrainResult result;
  RandomStates random;
  result.resumed = job.resume && load_checkpoint(run_dir.string(), st, model.tensors, *opt.optimizer, random);
  if (result.resumed) restore_random_states(random, rank, run_dir.string());
  // Every rank starts from rank 0's tensors (a library user may have initialised them differently).
  if (parallel) parallel->broadcast(params);
  std::optional<MetricsLog> log;
  if (main_rank) log.emplace((run_dir / "metrics.jsonl").string(), result.resumed, st.step);
  const fs::path task_dir = run_dir / "task";

  auto checkpoint = [&] {
    const RandomStates states = gather_random_states(parallel);  // a collective: every rank
    if (main_rank) {
      try {
        save_checkpoint(run_dir.string(), st, model.tensors, *opt.optimizer, states, [&] {
          if (cb.during_checkpoint) cb.during_checkpoint(st.step);
        });
      } catch (const Error& e) {  // a full disk, a size limit: the previous checkpoint still stands
        const std::string last = latest_checkpoint(run_dir.string());
        fail("step {}: checkpoint not saved ({}); {}", st.step, e.what(),
             last.empty() ? "no earlier checkpoint" : "resume from " + last);
      }
    }
    if (cb.after_checkpoint) cb.after_checkpoint(st.step);
  };
  auto save_task = [&](const nlohmann::json& metrics) {
    if (!main_rank) return;
    replace_folder(task_dir.string(), [&](const std::string& tmp) {
      if (model.save_task) model.save_task(tmp);
      io::write_file_atomically(tmp + "/metrics.json", metrics.dump(2) + "\n");
    });
  };
  // Evaluates on dev (if any), keeps the best task, checkpoints. Returns true to stop early.
  int64_t last_eval_step = result.resumed ? st.step : -1;
  auto evaluate_and_checkpoint = [&]() -> bool {
    last_eval_step = st.step;
    bool stop = false;
    if (job.dev) {
      EvalResult r = evaluate(model, *job.dev, job.metrics, o.eval_batch_size, o.device, parallel);
      const double metric = main_metric(r.metrics, job.metrics);
      nlohmann::json line{{"type", "eval"}, {"step", st.step}, {"epoch", st.epoch}, {"main_metric", metric}};
      line.update(r.metrics);
      if (log) log->write(line);
      if (cb.on_eval) cb.on_eval(line);
      if (metric > st.best_metric) {
        st.best_metric = metric;
        st.best_step = st.step;
        st.evals_without_improvement = 0;
        save_task(line);
      } else {
        ++st.evals_without_improvement;
        stop = o.patience > 0 && st.evals_without_improvement >= o.patience;
      }
      model.set_training(true);
    }
    checkpoint();
    return stop;
  };

  // ---- the loop ----
  const auto start = Clock::now();
  int64_t steps_here = 0, logged_steps = 0, gradient_bytes = 0;
  double reduce_seconds = 0;
  double logged_loss = 0;
  bool stop = false;
  while (!stop && st.step < total_steps && st.epoch < epochs) {
    const auto batches = data::plan_batches(train_data, batching, st.epoch);
    const auto n_batches = static_cast<int64_t>(batches.size());
    model.set_training(true);
    while (st.batch < n_batches && st.step < total_steps) {
      // One optimizer step over `group` micro-batches (fewer at the end of an epoch).
      const int64_t group = std::min(o.grad_accum, n_batches - st.batch);
      opt.optimizer->zero_grad();
      double step_loss = 0;
      for (int64_t k = 0; k < group; ++k) {
        const auto& global = batches[static_cast<size_t>(st.batch + k)];
        const std::vector<size_t> indices = parallel ? rank_slice(global, rank, world) : global;
        std::optional<data::Batch> batch;
        double items = 0, share = 1;
        if (!indices.empty()) {
          batch = data::collate(train_data, indices, o.device);
          items = loss_items(*batch);
        }
        if (parallel) {  // this rank's share of the global batch's loss
          auto total = torch::tensor({items}, torch::kDouble);
          parallel->all_reduce_sum({total});
          share = total.item<double>() > 0 ? items / total.item<double>() : 0.0;
        }
        if (!batch || share == 0) continue;
        torch::Tensor loss = model.loss ? model.loss(batch->input, batch->labels)
                                        : model.head.loss(model.forward(batch->input), batch->labels);
        const double value = loss.item<double>();
        if (std::isfinite(value)) (parallel ? loss * (share / double(group)) : loss / double(group)).backward();
        step_loss += value * share / double(group);
      }
      if (parallel) {
        const auto reduce_start = Clock::now();
        step_loss = sum_gradients(*parallel, params, step_loss, gradient_bytes);
        reduce_seconds += std::chrono::duration<double>(Clock::now() - reduce_start).count();
      }
      if (!std::isfinite(step_loss)) {
        const std::string last = main_rank ? latest_checkpoint(run_dir.string()) : "";
        fail("step {}: loss is {}; training stopped ({})", st.step + 1, step_loss,
             last.empty() ? "no checkpoint was saved yet" : "last good checkpoint: " + last);
      }
      st.batch += group;
      if (o.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
      const double factor = lr_factor(o.schedule, st.step, warmup, total_steps);
      set_lr(opt, factor);
      opt.optimizer->step();
      ++st.step;
      if (model.after_step) model.after_step(st.step, total_steps);
      ++steps_here;

      StepInfo info{st.step, total_steps, st.epoch, step_loss, opt.base_lrs.front() * factor,
                    std::chrono::duration<double>(Clock::now() - start).count(), steps_here};
      if (cb.on_step) cb.on_step(info);
      logged_loss += step_loss;
      ++logged_steps;
      if (o.log_every > 0 && (st.step % o.log_every == 0 || st.step == total_steps)) {
        nlohmann::json line{{"type", "train"}, {"step", st.step}, {"epoch", double(st.epoch) + double(st.batch) / double(n_batches)},
                            {"loss", logged_loss / double(logged_steps)}, {"lr", info.lr}, {"elapsed_s", info.elapsed_s}};
        if (model.log_values) line.update(model.log_values(st.step, total_steps));
        if (log) log->write(line);
        logged_loss = 0;
        logged_steps = 0;
      }
      if (o.eval_every > 0 && st.step % o.eval_every == 0) {
        if ((stop = evaluate_and_checkpoint())) break;
      } else if (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0) {
        checkpoint();
      }
    }
    if (stop || st.batch < n_batches) break;  // early stop, or max_steps reached mid-epoch
    ++st.epoch;
    st.batch = 0;
    if (o.eval_every == 0 && (stop = evaluate_and_checkpoint())) break;
  }
  if (last_eval_step != st.step) stop = evaluate_and_checkpoint() || stop;

  // ---- results ----
  if (!job.dev) save_task({{"step", st.step}});
  result.steps = st.step;
  result.best_step = st.best_step;
  result.best_metric = std::isfinite(st.best_metric) ? st.best_metric : 0.0;
  result.best_metrics = job.dev ? read_json_or_empty(task_dir / "metrics.json") : nlohmann::json::object();
  result.stopped_early = stop;
  result.train_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.seconds_per_step = steps_here > 0 ? result.train_seconds / double(steps_here) : 0.0;
  result.task_dir = task_dir.string();
  if (steps_here > 0) {
    result.bytes_all_reduced_per_step = gradient_bytes / steps_here;
    result.all_reduce_seconds_per_step = reduce_seconds / double(steps_here);
  }
  if (!main_rank) return result;
  nlohmann::json summary{{"steps", result.steps}, {"best_step", result.best_step}, {"best_metric", result.best_metric},
                         {"best_metrics", result.best_metrics}, {"stopped_early", result.stopped_early},
                         {"train_seconds", result.train_seconds}, {"seconds_per_step", result.seconds_per_step},
                         {"task_dir", result.task_dir}};
  io::write_file_atomically((run_dir / "results.json").string(), summary.dump(2) + "\n");
  return result;
}

}  // namespace peft::train
