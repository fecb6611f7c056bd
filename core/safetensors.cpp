#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace lloco {

namespace {

using json = nlohmann::json;

// Tensor bytes are copied to and from the file as they are in memory.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// JSON string literal for a name; invalid UTF-8 cannot be stored in the header.
std::string quoted(const std::string& s, const std::string& path, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    LLOCO_FAIL("safetensors", "'", path, "': ", what, " is not valid UTF-8");
  }
}

}  // namespace

const Tensor& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    LLOCO_FAIL("safetensors", "'", path_, "': no tensor named '", name, "' (the file has ", names_.size(),
               " tensors)");
  return it->second;
}

std::vector<std::pair<std::string, Tensor>> SafetensorsFile::items() const {
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(names_.size());
  for (const std::string& n : names_) out.emplace_back(n, tensors_.at(n));
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    LLOCO_FAIL("safetensors", "cannot open '", path, "': ", errno_text(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    LLOCO_FAIL("safetensors", "cannot stat '", path, "': ", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    LLOCO_FAIL("safetensors", "'", path, "' is not a regular file");
  }
  const size_t file_size = static_cast<size_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    parse_safetensors_header(nullptr, 0, file_size, path);  // throws the "too short" error
  }
  // Private read-only mapping: pages load lazily and are shared with the page cache. Truncating the
  // file while it is mapped makes later reads fault (SIGBUS); checkpoints are replaced by rename.
  void* addr = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (addr == MAP_FAILED) LLOCO_FAIL("safetensors", "cannot mmap '", path, "': ", errno_text(map_err));
  std::shared_ptr<void> mapping(addr, [file_size](void* p) { ::munmap(p, file_size); });

  const auto* base = static_cast<const uint8_t*>(addr);
  SafetensorsHeader header = parse_safetensors_header(base, file_size, file_size, path);

  SafetensorsFile f;
  f.path_ = path;
  f.metadata_ = std::move(header.metadata);
  f.mapping_ = mapping;
  f.mapping_bytes_ = file_size;
  f.names_.reserve(header.entries.size());
  f.tensors_.reserve(header.entries.size());
  for (SafetensorsEntry& e : header.entries) {
    if (!e.dtype)
      LLOCO_FAIL("safetensors", "unsupported dtype ", e.dtype_name, " for tensor '", e.name, "' in file '", path,
                 "' (lloco supports F32, F16, BF16, F64, I32, I64)");
    if (e.shape.size() > static_cast<size_t>(kMaxDims))
      LLOCO_FAIL("safetensors", "'", path, "': tensor '", e.name, "' has ", e.shape.size(),
                 " dims, lloco tensors support at most ", kMaxDims);
    const DType dt = *e.dtype;
    const size_t nbytes = e.end - e.begin;
    uint8_t* data = const_cast<uint8_t*>(base) + header.data_start + e.begin;
    std::shared_ptr<Storage> storage;
    if (nbytes > 0 && reinterpret_cast<uintptr_t>(data) % dtype_size(dt) != 0) {
      storage = std::make_shared<Storage>(nbytes, cpu());
      std::memcpy(storage->data(), data, nbytes);
      ++f.copied_;
    } else {
      storage = std::make_shared<Storage>(data, nbytes, cpu(), mapping);
    }
    Shape strides = contiguous_strides(e.shape);
    f.tensors_.emplace(e.name, Tensor(std::move(storage), std::move(e.shape), std::move(strides), 0, dt));
    f.names_.push_back(std::move(e.name));
  }
  return f;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::unordered_set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    LLOCO_CHECK(name != "__metadata__", "safetensors", "'", path, "': '__metadata__' is reserved, not a tensor name");
    LLOCO_CHECK(seen.insert(name).second, "safetensors", "'", path, "': duplicate tensor name '", name, "'");
    LLOCO_CHECK(t.defined(), "safetensors", "'", path, "': tensor '", name, "' is undefined");
  }

  // Widest elements first: with the 8-byte-aligned data start, every tensor is then aligned.
  std::vector<size_t> layout(tensors.size());
  for (size_t i = 0; i < layout.size(); ++i) layout[i] = i;
  std::stable_sort(layout.begin(), layout.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].second.dtype()) > dtype_size(tensors[b].second.dtype());
  });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t offset = 0;
  for (size_t i : layout) {
    begin[i] = offset;
    offset += tensors[i].second.nbytes();
  }

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      first = false;
      header += quoted(k, path, "a metadata key") + ":" + quoted(v, path, "a metadata value");
    }
    header += '}';
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (header.size() > 1) header += ',';
    header += quoted(name, path, "a tensor name");
    header += ":{\"dtype\":\"";
    header += safetensors_dtype_name(t.dtype());
    header += "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (d) header += ',';
      header += std::to_string(t.size(d));
    }
    header += "],\"data_offsets\":[" + std::to_string(begin[i]) + "," + std::to_string(begin[i] + t.nbytes()) + "]}";
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // as the reference writer: data starts 8-aligned

  uint8_t len[8];
  for (int b = 0; b < 8; ++b) len[b] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * b));
  AtomicFile out(path);
  out.write(len, sizeof len);
  out.write(header);
  for (size_t i : layout) {
    const Tensor& t = tensors[i].second;
    if (t.numel() == 0) continue;
    Tensor host = t.detach().to(cpu()).contiguous();  // one tensor at a time bounds the extra host memory
    out.write(host.data_ptr(), host.nbytes());
  }
  out.commit();
}

}  // namespace lloco
