#include "peft/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <streambuf>
#include <vector>

#include "peft/error.h"

namespace peft::io {
namespace {

// A buffered std::streambuf over a POSIX file descriptor. std::ofstream gives no descriptor to
// fsync and no errno on failure; this keeps both.
class FdStreamBuf : public std::streambuf {
 public:
  explicit FdStreamBuf(int fd) : fd_(fd), buffer_(1 << 16) { reset_buffer(); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!flush_buffer()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }

  // Large blocks (tensor data) bypass the buffer.
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n < epptr() - pptr()) {
      std::memcpy(pptr(), s, static_cast<size_t>(n));
      pbump(static_cast<int>(n));
      return n;
    }
    if (!flush_buffer() || !write_all(s, static_cast<size_t>(n))) return 0;
    return n;
  }

  int sync() override { return flush_buffer() ? 0 : -1; }

 private:
  void reset_buffer() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }

  bool flush_buffer() {
    const size_t pending = static_cast<size_t>(pptr() - pbase());
    if (pending > 0 && !write_all(pbase(), pending)) return false;
    reset_buffer();
    return true;
  }

  bool write_all(const char* p, size_t n) {
    while (n > 0) {
      const ssize_t written = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (written < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      p += written;
      n -= static_cast<size_t>(written);
    }
    return true;
  }

  int fd_;
  int error_ = 0;
  std::vector<char> buffer_;
};

// The temp file; closed and removed on scope exit unless commit() renamed it into place.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    namespace fs = std::filesystem;
    const fs::path target_path(target);
    const fs::path dir = target_path.has_parent_path() ? target_path.parent_path() : fs::path(".");
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; attempt < 100; ++attempt) {
      // Leading dot hides it from globbing; pid + counter keeps concurrent writers apart.
      temp_ = (dir / ("." + target_path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                      std::to_string(counter++)))
                  .string();
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) {
        keep_mode_of_existing_target();
        return;
      }
      if (errno != EEXIST) break;
    }
    fail("{}: cannot create a temporary file next to it: {}", target, std::strerror(errno));
  }

  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }

  int fd() const { return fd_; }

  // fsync, close, rename over the target, fsync the folder.
  void commit() {
    if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", target_, std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("{}: close failed: {}", target_, std::strerror(errno));
    if (std::rename(temp_.c_str(), target_.c_str()) != 0)
      fail("{}: cannot rename the temporary file into place: {}", target_, std::strerror(errno));
    committed_ = true;
    sync_parent_dir();
  }

 private:
  // A replaced file keeps its permissions (e.g. a private 0600 checkpoint stays private).
  void keep_mode_of_existing_target() const {
    struct stat st {};
    if (::stat(target_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::fchmod(fd_, st.st_mode & 07777);
  }

  // Best effort: the new file is already in place, and some filesystems cannot fsync folders.
  void sync_parent_dir() const {
    const std::filesystem::path target_path(target_);
    const std::string dir = target_path.has_parent_path() ? target_path.parent_path().string() : ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
  }

  std::string target_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  TempFile temp(path);
  FdStreamBuf buffer(temp.fd());
  std::ostream stream(&buffer);
  writer(stream);
  stream.flush();
  if (!stream) {
    const int error = buffer.error();
    fail("{}: write failed: {}", path, error != 0 ? std::strerror(error) : "stream error");
  }
  temp.commit();
}

void write_file_atomically(const std::string& path, std::string_view content) {
  write_file_atomically(path, [&](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

}  // namespace peft::io
