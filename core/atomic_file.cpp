#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>
#include <system_error>

#include "core/error.h"

namespace lloco {

namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  LLOCO_CHECK(!path_.empty() && path_.back() != '/', "atomic_file", "invalid target path '", path_, "'");
  // O_EXCL plus a random suffix: concurrent writers of the same target never share a temp file.
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    temp_path_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + random_suffix();
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    int err = errno;
    LLOCO_FAIL("atomic_file", "cannot create temp file '", temp_path_, "' for '", path_, "': ", errno_text(err));
  }
  open_ = true;
  // Keep the permissions of a file we replace (a fresh file gets 0666 & ~umask like any other).
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::fchmod(fd_, st.st_mode & 07777);
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(other.fd_),
      written_(other.written_),
      open_(other.open_) {
  other.fd_ = -1;
  other.open_ = false;
}

AtomicFile::~AtomicFile() { abort(); }

void AtomicFile::abort() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (open_) ::unlink(temp_path_.c_str());
  open_ = false;
}

void AtomicFile::fail(const char* what, int err) {
  abort();
  LLOCO_FAIL("atomic_file", what, " '", path_, "' (temp '", temp_path_, "'): ", errno_text(err));
}

void AtomicFile::write(const void* data, size_t nbytes) {
  LLOCO_CHECK(open_, "atomic_file", "write to '", path_, "' after commit or failure");
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", errno);
    }
    p += n;
    nbytes -= static_cast<size_t>(n);
    written_ += static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  LLOCO_CHECK(open_, "atomic_file", "commit of '", path_, "' after commit or failure");
  if (::fsync(fd_) != 0) fail("cannot fsync", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot close", errno);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("cannot rename temp file over", errno);
  open_ = false;
  // The rename is only durable once the directory entry is flushed too.
  std::string dir = parent_dir(path_);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int err = errno;
    LLOCO_FAIL("atomic_file", "wrote '", path_, "' but cannot open its directory '", dir,
               "' to fsync it: ", errno_text(err));
  }
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  // Some filesystems cannot fsync directories at all; there is nothing more to do there.
  if (rc != 0 && err != EINVAL && err != ENOTSUP)
    LLOCO_FAIL("atomic_file", "wrote '", path_, "' but cannot fsync its directory '", dir, "': ", errno_text(err));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

}  // namespace lloco
