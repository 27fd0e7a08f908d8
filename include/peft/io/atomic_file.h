#pragma once
// Crash-safe file replacement, for checkpoints, adapters and JSON outputs.
//
// write_file_atomically(path, writer):
//   1. creates a uniquely named temp file next to `path` (same folder, so rename is atomic),
//      with the permissions of the file it replaces, or else the usual 0666 minus umask;
//   2. calls writer(stream) to fill it;
//   3. flushes, fsyncs the temp file, renames it over `path`, then fsyncs the folder so the
//      rename itself survives a power loss.
// Readers therefore see either the complete old file or the complete new one, never a torn mix.
// If the writer throws, or any step fails (disk full, missing folder, ...), the temp file is
// removed and `path` is left untouched; a writer's exception propagates unchanged, I/O failures
// throw peft::Error naming `path`. A symlink at `path` is replaced, not followed.
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace peft::io {

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer);

// Convenience form for content already in memory.
void write_file_atomically(const std::string& path, std::string_view content);

}  // namespace peft::io
