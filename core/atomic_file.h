// Crash-safe file replacement: bytes go to a temp file next to the target, which is fsync'ed and
// renamed over it, so readers see either the old file or the complete new one, never a torn write.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace lloco {

// Usage: AtomicFile f(path); f.write(...); f.commit();
// The temp file is "<path>.tmp.<pid>.<random>" in the target's directory (rename is only atomic
// within one filesystem). Every failure removes the temp file and throws lloco::Error naming the
// path and the errno text; the target is untouched unless commit() got as far as the rename.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates the temp file
  ~AtomicFile();                          // removes the temp file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;

  void write(const void* data, size_t nbytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync the file, rename it over the target, fsync the directory. Call once.
  void commit();
  // Drop the temp file without touching the target (also what the destructor does).
  void abort() noexcept;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  size_t bytes_written() const { return written_; }

 private:
  [[noreturn]] void fail(const char* what, int err);

  std::string path_, temp_path_;
  int fd_ = -1;
  size_t written_ = 0;
  bool open_ = false;  // temp file exists and is ours to remove
};

// Replace `path` with exactly `bytes`, atomically (see AtomicFile).
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace lloco
