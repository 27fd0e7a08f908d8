#include "tokenize/files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "peft/error.h"

namespace peft::tok {

std::string read_file(const std::string& path, const char* what) {
  if (std::filesystem::is_directory(path)) fail("cannot read {} {}: it is a directory", what, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {} {}: {}", what, path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read {} {}: read error", what, path);
  return std::move(text).str();
}

nlohmann::json read_json(const std::string& path, const char* what) {
  const std::string text = read_file(path, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{} {} is not valid JSON: {}", what, path, e.what());
  }
}

}  // namespace peft::tok
