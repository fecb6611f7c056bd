// Self-registration of the CUDA backend at program start. This object is built as an OBJECT
// library and linked into consumers through lloco_cuda_registered (see cuda/CMakeLists.txt), so
// the linker cannot drop it the way it drops unreferenced members of a static archive.
#include "cuda/cuda.h"

namespace {
// cuda_backend_init() only queries the device count (no context is created) and never throws.
[[maybe_unused]] const bool g_cuda_registered = lloco::cuda_backend_init();
}  // namespace
