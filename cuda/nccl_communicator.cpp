#include "cuda/nccl_communicator.h"

// LLOCO_HAVE_NCCL_H comes from cuda/CMakeLists.txt (lloco_cuda only, never the simt executor). The
// header gives the types and function signatures; the functions themselves are resolved with dlsym.
#if defined(LLOCO_HAVE_NCCL_H)
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cuda/common.h"
#endif

namespace lloco {

#if defined(LLOCO_HAVE_NCCL_H)

namespace {

// ncclBfloat16 arrived in NCCL 2.10; every other call used here is older.
constexpr int kMinNcclVersion = 21000;

// The resolved entry points, named as in nccl.h so that NCCL_CHECK's message names the call.
struct NcclApi {
  decltype(&::ncclGetVersion) ncclGetVersion = nullptr;
  decltype(&::ncclGetUniqueId) ncclGetUniqueId = nullptr;
  decltype(&::ncclCommInitRank) ncclCommInitRank = nullptr;
  decltype(&::ncclCommDestroy) ncclCommDestroy = nullptr;
  decltype(&::ncclCommAbort) ncclCommAbort = nullptr;
  decltype(&::ncclCommGetAsyncError) ncclCommGetAsyncError = nullptr;
  decltype(&::ncclAllReduce) ncclAllReduce = nullptr;
  decltype(&::ncclBroadcast) ncclBroadcast = nullptr;
  decltype(&::ncclGetErrorString) ncclGetErrorString = nullptr;
  decltype(&::ncclGetLastError) ncclGetLastError = nullptr;  // optional: NCCL >= 2.13
};

struct NcclLibrary {
  NcclApi api;
  int version = 0;
  std::string error;  // empty when loaded
};

NcclLibrary load_nccl() {
  NcclLibrary lib;
  // An explicit LLOCO_NCCL_LIBRARY is the only candidate: a wrong path is an error, not a silent
  // fallback to whichever NCCL the loader finds.
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LLOCO_NCCL_LIBRARY"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  } else {
    candidates.emplace_back("libnccl.so.2");
    candidates.emplace_back("libnccl.so");
  }

  void* handle = nullptr;
  std::string path, tried;
  for (const std::string& candidate : candidates) {
    handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      path = candidate;
      break;
    }
    const char* why = dlerror();
    tried += (tried.empty() ? "" : "; ") + (why != nullptr ? std::string(why) : candidate + ": dlopen failed");
  }
  if (handle == nullptr) {
    lib.error = "cannot load NCCL (set LLOCO_NCCL_LIBRARY to libnccl.so.2's path): " + tried;
    return lib;
  }

  std::string missing;
  auto resolve = [&](auto& fn, const char* name, bool required) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
    if (fn == nullptr && required) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  NcclApi& a = lib.api;
  resolve(a.ncclGetVersion, "ncclGetVersion", true);
  resolve(a.ncclGetUniqueId, "ncclGetUniqueId", true);
  resolve(a.ncclCommInitRank, "ncclCommInitRank", true);
  resolve(a.ncclCommDestroy, "ncclCommDestroy", true);
  resolve(a.ncclCommAbort, "ncclCommAbort", true);
  resolve(a.ncclCommGetAsyncError, "ncclCommGetAsyncError", true);
  resolve(a.ncclAllReduce, "ncclAllReduce", true);
  resolve(a.ncclBroadcast, "ncclBroadcast", true);
  resolve(a.ncclGetErrorString, "ncclGetErrorString", true);
  resolve(a.ncclGetLastError, "ncclGetLastError", false);
  if (!missing.empty()) {
    dlclose(handle);  // nothing from it ran yet
    lib.api = NcclApi{};
    lib.error = path + " lacks " + missing;
    return lib;
  }
  if (a.ncclGetVersion(&lib.version) != ncclSuccess || lib.version < kMinNcclVersion) {
    lib.error = path + " is NCCL version code " + std::to_string(lib.version) + ", lloco needs >= " +
                std::to_string(kMinNcclVersion) + " (2.10, for bf16 reductions)";
    lib.version = 0;
    lib.api = NcclApi{};
    return lib;  // the handle stays open: NCCL may have started threads in ncclGetVersion's init
  }
  // Never dlclose'd: NCCL keeps proxy threads and static state until the process exits.
  return lib;
}

const NcclLibrary& nccl_library() {
  static const NcclLibrary lib = load_nccl();
  return lib;
}

const NcclApi& nccl() { return nccl_library().api; }

[[noreturn]] void throw_nccl_error(ncclResult_t result, const char* op, const char* call, const char* file, int line) {
  // ncclGetLastError ignores its argument and reports this thread's last failure in detail
  // (e.g. "Duplicate GPU detected"), which ncclGetErrorString's category text lacks.
  const char* detail = nccl().ncclGetLastError != nullptr ? nccl().ncclGetLastError(nullptr) : nullptr;
  LLOCO_FAIL(op, call, " failed: ", nccl().ncclGetErrorString(result),
             (detail != nullptr && *detail != '\0') ? std::string(" (") + detail + ")" : std::string(), " at ", file,
             ":", line);
}

}  // namespace

// Only for calls that do not touch a live communicator (those go through check_collective).
#define NCCL_CHECK(op, call)                                           \
  do {                                                                 \
    ncclResult_t lloco_nccl_r_ = (call);                               \
    if (lloco_nccl_r_ != ncclSuccess)                                  \
      throw_nccl_error(lloco_nccl_r_, op, #call, __FILE__, __LINE__);  \
  } while (0)

namespace {

// One rank of an NCCL group on one GPU. Collectives run in place on the thread's current CUDA stream,
// so they are ordered with the kernels that produce and consume the tensor; all_gather_bytes and
// barrier go through the bootstrap group. Not thread-safe (like an NCCL communicator).
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<Communicator> bootstrap, Device device)
      : bootstrap_(std::move(bootstrap)), device_(device) {
    const char* op = "nccl init";
    LLOCO_CHECK(bootstrap_ != nullptr, op, "bootstrap communicator is null");
    LLOCO_CHECK(device_.type == DeviceType::CUDA, op, "device must be a CUDA device, got ", device_.str());

    // Rank 0 makes the id; a failure there is sent as an empty blob so that no rank waits forever.
    ncclUniqueId id{};
    ncclResult_t id_result = ncclSuccess;
    std::string mine;
    if (rank() == 0) {
      id_result = nccl().ncclGetUniqueId(&id);
      if (id_result == ncclSuccess) mine.assign(id.internal, sizeof(id.internal));
    }
    const std::vector<std::string> ids = bootstrap_->all_gather_bytes(mine);
    if (id_result != ncclSuccess)
      throw_nccl_error(id_result, op, "ncclGetUniqueId", __FILE__, __LINE__);
    LLOCO_CHECK_EQ(ids.size(), static_cast<size_t>(world_size()), op, "blobs from the bootstrap's all_gather_bytes");
    LLOCO_CHECK(ids[0].size() == sizeof(id.internal), op, "rank 0 sent a ", ids[0].size(),
                "-byte ncclUniqueId, expected ", sizeof(id.internal), " (its ncclGetUniqueId failed)");
    std::memcpy(id.internal, ids[0].data(), sizeof(id.internal));

    // Every rank reports whether its device could be selected before any enters ncclCommInitRank,
    // which would otherwise wait for a rank that already gave up.
    const cudaError_t set = cudaSetDevice(device_.index);
    const std::vector<std::string> statuses =
        bootstrap_->all_gather_bytes(set == cudaSuccess ? std::string() : std::string(cudaGetErrorString(set)));
    for (size_t r = 0; r < statuses.size(); ++r)
      LLOCO_CHECK(statuses[r].empty(), op, "rank ", r, " cannot select its CUDA device: ", statuses[r]);

    NCCL_CHECK(op, nccl().ncclCommInitRank(&comm_, world_size(), id, rank()));
  }

  ~NcclCommunicator() override {
    if (comm_ == nullptr) return;
    // Destroy flushes outstanding work; a communicator that saw an error may never finish it.
    if (broken_)
      nccl().ncclCommAbort(comm_);
    else
      nccl().ncclCommDestroy(comm_);
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return bootstrap_->rank(); }
  int world_size() const override { return bootstrap_->world_size(); }
  std::string name() const override { return "nccl"; }

  void all_reduce_sum(const Tensor& t) override {
    const char* op = "nccl all_reduce_sum";
    const ncclDataType_t dtype = checked_dtype(t, op);
    if (t.numel() == 0) return;
    void* data = t.data_ptr();
    check_collective(nccl().ncclAllReduce(data, data, static_cast<size_t>(t.numel()), dtype, ncclSum, comm_, stream()),
                     op, "ncclAllReduce", __LINE__);
  }

  void broadcast(const Tensor& t, int root) override {
    const char* op = "nccl broadcast";
    const ncclDataType_t dtype = checked_dtype(t, op);
    LLOCO_CHECK(root >= 0 && root < world_size(), op, "root ", root, " is outside the group of ", world_size(),
                " ranks");
    if (t.numel() == 0) return;
    void* data = t.data_ptr();
    check_collective(nccl().ncclBroadcast(data, data, static_cast<size_t>(t.numel()), dtype, root, comm_, stream()), op,
                     "ncclBroadcast", __LINE__);
  }

  std::vector<std::string> all_gather_bytes(const std::string& mine) override {
    return bootstrap_->all_gather_bytes(mine);
  }

  void barrier() override {
    wait_for_stream("nccl barrier");
    bootstrap_->barrier();
  }

 private:
  static cudaStream_t stream() { return to_cuda(current_stream(DeviceType::CUDA)); }

  // A failed collective leaves the group in an unknown state: later calls refuse, the destructor aborts.
  void check_collective(ncclResult_t result, const char* op, const char* call, int line) {
    if (result == ncclSuccess) return;
    broken_ = true;
    throw_nccl_error(result, op, call, __FILE__, line);
  }

  // Validates `t` for an in-place collective and maps its dtype to NCCL's.
  ncclDataType_t checked_dtype(const Tensor& t, const char* op) const {
    LLOCO_CHECK(!broken_, op, "this NCCL communicator on ", device_.str(), " failed earlier and cannot be used");
    LLOCO_CHECK(t.defined(), op, "undefined tensor");
    LLOCO_CHECK(t.device() == device_, op, "tensor ", t.str(), " must be on ", device_.str(),
                ", this NCCL communicator's device");
    LLOCO_CHECK(t.is_contiguous(), op, "tensor ", t.str(), " must be contiguous (the collective runs over its memory)");
    switch (t.dtype()) {
      case DType::F32: return ncclFloat32;
      case DType::F64: return ncclFloat64;
      case DType::BF16: return ncclBfloat16;
      case DType::F16: return ncclFloat16;
      default:
        LLOCO_FAIL(op, "unsupported dtype ", dtype_name(t.dtype()), " of tensor ", t.str(), " on ", device_.str(),
                   " (f32, f64, bf16 or f16)");
    }
  }

  // Waits for the current stream (the NCCL work queued so far), polling NCCL's asynchronous error so
  // that a failed peer or network surfaces as an error here instead of a stream that never drains.
  void wait_for_stream(const char* op) {
    LLOCO_CHECK(!broken_, op, "this NCCL communicator on ", device_.str(), " failed earlier and cannot be used");
    const cudaStream_t s = stream();
    for (;;) {
      const cudaError_t q = cudaStreamQuery(s);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) CUDA_CHECK(q);
      ncclResult_t async = ncclSuccess;
      check_collective(nccl().ncclCommGetAsyncError(comm_, &async), op, "ncclCommGetAsyncError", __LINE__);
      if (async != ncclSuccess && async != ncclInProgress) {
        broken_ = true;
        throw_nccl_error(async, op, "an earlier NCCL collective (ncclCommGetAsyncError)", __FILE__, __LINE__);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  std::shared_ptr<Communicator> bootstrap_;
  Device device_;
  ncclComm_t comm_ = nullptr;
  bool broken_ = false;  // an NCCL call failed: the communicator is aborted instead of destroyed
};

}  // namespace

bool nccl_compiled_in() { return true; }
bool nccl_available() { return nccl_library().error.empty(); }
std::string nccl_load_error() { return nccl_library().error; }
int nccl_loaded_version() { return nccl_library().version; }

std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Communicator> bootstrap, Device device) {
  if (!nccl_available()) return nullptr;
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), device);
}

void register_nccl_communicator() { register_device_communicator(DeviceType::CUDA, &make_nccl_communicator); }

#else  // !LLOCO_HAVE_NCCL_H

bool nccl_compiled_in() { return false; }
bool nccl_available() { return false; }
std::string nccl_load_error() {
  return "NCCL support is not compiled into this build (nccl.h was not found at configure time, or this is the "
         "simt CPU executor)";
}
int nccl_loaded_version() { return 0; }
std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<Communicator>, Device) { return nullptr; }
void register_nccl_communicator() {}

#endif  // LLOCO_HAVE_NCCL_H

}  // namespace lloco
