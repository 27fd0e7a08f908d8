#pragma once
// Loading PyTorch `.bin` / `.pt` state dicts written by torch.save (the zip format, default since
// PyTorch 1.6), e.g. older Hugging Face checkpoints (pytorch_model.bin, adapter_model.bin).
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace peft::io {

// The str -> Tensor entries of the state dict, in the order they were saved. Uses LibTorch's own
// unpickler, which only rebuilds tensors and plain containers: no Python code runs. Throws
// peft::Error "<path>: not a torch.save zip checkpoint (...)" for legacy (pre-1.6) pickles and
// anything unreadable, and an error naming the key when the top level is not a dict of tensors.
std::vector<std::pair<std::string, torch::Tensor>> load_torch_bin(const std::string& path);

}  // namespace peft::io
