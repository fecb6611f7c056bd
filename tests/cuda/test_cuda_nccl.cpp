// NCCL communicator (cuda/nccl_communicator.*) in a group of one: collectives must leave the tensor
// bit-identical, run on the current stream, and reject tensors they cannot handle with clear errors.
//
// Only world size 1 is tested: NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), and the
// GPU machine has one, so the multi-rank sums are exercised where two GPUs exist, not here.
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/collective.h"
#include "core/tensor.h"
#include "cuda/nccl_communicator.h"
#include "cuda/stream.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

class NcclTest : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    if (!nccl_compiled_in()) GTEST_SKIP() << nccl_load_error();
    // cuda_backend_init() registered the factory; it must exist whether or not NCCL loads.
    factory_ = device_communicator_factory(DeviceType::CUDA);
    ASSERT_NE(factory_, nullptr) << "cuda_backend_init() did not register the NCCL communicator factory";
    if (!nccl_available()) GTEST_SKIP() << "NCCL cannot be loaded: " << nccl_load_error();
    comm_ = factory_(std::make_shared<SingleProcessCommunicator>(), cuda(0));
    ASSERT_NE(comm_, nullptr) << "NCCL loaded but the factory returned no communicator";
  }

  DeviceCommunicatorFactory factory_ = nullptr;
  std::unique_ptr<Communicator> comm_;
};

// The tensor's bytes on the host (any dtype), for bit-exact comparisons.
std::vector<unsigned char> bytes_of(const Tensor& t) {
  const Tensor h = t.to(lloco::cpu()).contiguous();
  std::vector<unsigned char> out(h.nbytes());
  if (!out.empty()) std::memcpy(out.data(), h.data_ptr(), out.size());
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(NcclTest, FactoryMakesAnNcclCommunicatorOfOneRank) {
  EXPECT_EQ(comm_->name(), "nccl");
  EXPECT_EQ(comm_->rank(), 0);
  EXPECT_EQ(comm_->world_size(), 1);
  EXPECT_GE(nccl_loaded_version(), 21000);
  EXPECT_TRUE(nccl_load_error().empty()) << nccl_load_error();
  EXPECT_EQ(comm_->all_gather_bytes("abc"), std::vector<std::string>{"abc"});
  comm_->barrier();
}

TEST_F(NcclTest, AllReduceOfOneRankLeavesValuesUnchanged) {
  const std::vector<Shape> shapes = {{1}, {7}, {3, 13}, {1001}, {5, 0}};
  for (DType dt : {DType::F32, DType::BF16, DType::F64, DType::F16}) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Tensor host = randn(shapes[i], 100 + i, dt);
      const Tensor dev = host.to(cuda());
      comm_->all_reduce_sum(dev);
      EXPECT_EQ(bytes_of(dev), bytes_of(host)) << dtype_name(dt) << shape_str(shapes[i]);
      EXPECT_EQ(dev.shape(), shapes[i]);
    }
  }
  comm_->barrier();
}

TEST_F(NcclTest, BroadcastFromRootZeroLeavesValuesUnchanged) {
  for (DType dt : {DType::F32, DType::BF16, DType::F64}) {
    const Tensor host = randn({9, 11}, 7, dt);
    const Tensor dev = host.to(cuda());
    comm_->broadcast(dev, 0);
    EXPECT_EQ(bytes_of(dev), bytes_of(host)) << dtype_name(dt);
  }
  const Tensor empty_dev = zeros({0}, DType::F32, cuda());
  comm_->broadcast(empty_dev, 0);
  comm_->barrier();
}

// On a non-default stream: the collective is queued there, and barrier returns only once that
// stream has drained (the fill and the all-reduce of 64 MiB are still running when it is entered).
TEST_F(NcclTest, BarrierWaitsForTheCurrentStream) {
  CudaStream side;
  StreamGuard guard(side.handle());
  const int64_t n = int64_t{1} << 24;
  const Tensor dev = full({n}, 2.5, DType::F32, cuda());
  comm_->all_reduce_sum(dev);
  comm_->barrier();
  EXPECT_EQ(cudaStreamQuery(side.get()), cudaSuccess) << "barrier returned before the stream's work finished";
  EXPECT_EQ(dev.to(lloco::cpu()).to_vector<float>(), std::vector<float>(static_cast<size_t>(n), 2.5f));
}

TEST_F(NcclTest, RejectsTensorsItCannotReduce) {
  const std::string on_cpu = error_of([&] { comm_->all_reduce_sum(zeros({3}, DType::F32, lloco::cpu())); });
  EXPECT_NE(on_cpu.find("nccl all_reduce_sum"), std::string::npos) << on_cpu;
  EXPECT_NE(on_cpu.find("f32[3] cpu must be on cuda:0"), std::string::npos) << on_cpu;

  const std::string int_dtype = error_of([&] { comm_->all_reduce_sum(zeros({3}, DType::I32, cuda())); });
  EXPECT_NE(int_dtype.find("nccl all_reduce_sum"), std::string::npos) << int_dtype;
  EXPECT_NE(int_dtype.find("unsupported dtype i32"), std::string::npos) << int_dtype;
  EXPECT_NE(int_dtype.find("cuda:0"), std::string::npos) << int_dtype;

  const Tensor transposed = zeros({4, 6}, DType::F32, cuda()).transpose(0, 1);
  const std::string strided = error_of([&] { comm_->all_reduce_sum(transposed); });
  EXPECT_NE(strided.find("must be contiguous"), std::string::npos) << strided;

  const std::string bcast = error_of([&] { comm_->broadcast(zeros({3}, DType::I64, cuda()), 0); });
  EXPECT_NE(bcast.find("nccl broadcast"), std::string::npos) << bcast;
  EXPECT_NE(bcast.find("unsupported dtype i64"), std::string::npos) << bcast;

  const std::string root = error_of([&] { comm_->broadcast(zeros({3}, DType::F32, cuda()), 1); });
  EXPECT_NE(root.find("root 1 is outside the group of 1 ranks"), std::string::npos) << root;

  // Rejected calls leave the communicator usable.
  const Tensor ok = full({5}, 1.0, DType::F32, cuda());
  comm_->all_reduce_sum(ok);
  EXPECT_EQ(ok.to(lloco::cpu()).to_vector<float>(), std::vector<float>(5, 1.0f));
}

TEST_F(NcclTest, FactoryRejectsACpuDevice) {
  const std::string e = error_of([&] { factory_(std::make_shared<SingleProcessCommunicator>(), lloco::cpu()); });
  EXPECT_NE(e.find("nccl init"), std::string::npos) << e;
  EXPECT_NE(e.find("device must be a CUDA device, got cpu"), std::string::npos) << e;
}

}  // namespace
}  // namespace lloco::cuda_test
