#pragma once
// Small I/O helpers shared by subcommands: input lines from a file or stdin, output to stdout or a
// file written atomically, device names.
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include <torch/types.h>

namespace peft::cli {

// Reads lines (without the newline, a trailing '\r' dropped) from `path`, or stdin when it is "-" or empty.
std::vector<std::string> read_lines(const std::string& path);

// Writes to stdout when `path` is "-" or empty, else to `path` atomically (temp file + rename).
void write_output(const std::string& path, const std::function<void(std::ostream&)>& writer);

// "cpu", "cuda", "cuda:1"; an unavailable CUDA device is an error naming the option.
torch::Device parse_device(const std::string& name);

}  // namespace peft::cli
