#pragma once
// Folding low-rank updates into the base weights (LoRA, AdaMix-LoRA): each module's delta() is added to
// (or taken back out of) its linear site's weight, and the module stops (or resumes) adding its own
// output term through its `merged` flag.
#include "peft/methods/method.h"

namespace peft {

template <typename Module>
void fold_deltas(SiteModules<LinearSite, Module>& modules, bool fold) {
  torch::NoGradGuard no_grad;
  for (auto& [site, m] : modules) {
    const auto delta = m->delta().to(site->weight.scalar_type());
    torch::Tensor w = site->weight_out_in();  // a view: folds into Conv1D storage too
    if (fold) w.add_(delta);
    else w.sub_(delta);
    m->merged = fold;
  }
}

}  // namespace peft
