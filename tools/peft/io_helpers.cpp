#include "io_helpers.h"

#include <fstream>
#include <iostream>

#include <torch/cuda.h>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/runtime.h"

namespace peft::cli {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!path.empty() && path != "-") {
    file.open(path);
    if (!file) fail("{}: cannot open input file", path);
    in = &file;
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(*in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

void write_output(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  if (path.empty() || path == "-") {
    writer(std::cout);
    std::cout.flush();
    return;
  }
  io::write_file_atomically(path, writer);
}

torch::Device parse_device(const std::string& name) {
  torch::Device device = torch::kCPU;
  try {
    device = torch::Device(name);
  } catch (const std::exception&) {
    fail("--device: unknown device \"{}\" (use cpu, cuda or cuda:N)", name);
  }
  std::string why;
  if (device.is_cuda() && !load_cuda(&why)) fail("--device {}: cannot load LibTorch's CUDA library: {}", name, why);
  if (device.is_cuda() && !torch::cuda::is_available())
    fail("--device {}: CUDA is not available on this machine", name);
  if (device.is_cuda() && device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
    fail("--device {}: only {} CUDA device(s) present", name, torch::cuda::device_count());
  return device;
}

}  // namespace peft::cli
