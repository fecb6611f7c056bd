// safetensors I/O (https://github.com/huggingface/safetensors format): zero-copy memory-mapped
// loading and atomic saving of named tensors. The header validator lives in safetensors_header.h.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/safetensors_header.h"
#include "core/tensor.h"

namespace lloco {

// The tensors of one file. They are CPU views into a private read-only mapping of the file that
// stays alive while the SafetensorsFile or any tensor (or view of one) still references it.
// Treat them as read-only: writing through data_ptr() is undefined (with PROT_READ it faults);
// clone() first to modify. A tensor whose data is not aligned to its element size in the file
// (legal: readers must accept unaligned files) is copied into an aligned buffer instead, because
// the CPU kernels dereference typed pointers.
class SafetensorsFile {
 public:
  const std::string& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }  // header (file) order
  size_t size() const { return names_.size(); }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws lloco::Error naming the file and the tensor when it is missing.
  const Tensor& get(const std::string& name) const;
  std::vector<std::pair<std::string, Tensor>> items() const;  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // __metadata__

  // The mapped file, to check that tensors are views into it.
  const void* mapping_data() const { return mapping_.get(); }
  size_t mapping_bytes() const { return mapping_bytes_; }
  size_t copied_tensors() const { return copied_; }  // tensors copied for alignment

 private:
  friend SafetensorsFile load_safetensors(const std::string& path);
  std::string path_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<void> mapping_;
  size_t mapping_bytes_ = 0;
  size_t copied_ = 0;
};

// Maps and validates `path` (see parse_safetensors_header for what is checked). Valid safetensors
// dtypes without a lloco DType (BOOL, U8, I8, I16, U16, U32, U64, F8_*, ...) are an error.
SafetensorsFile load_safetensors(const std::string& path);

// Writes the tensors (any device, any strides; stored contiguous in C order) atomically. The header
// keeps the given order; the data buffer is laid out by decreasing element size so that every
// tensor is aligned to its element size in the file. Duplicate or reserved names throw before
// anything is written.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace lloco
