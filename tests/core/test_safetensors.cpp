// safetensors load/save: round trips, zero-copy mapping, files written by the Python reference,
// every malformed-header case, and the atomic writer's failure behaviour.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/safetensors.h"

namespace lloco {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "lloco_st_XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    for (const std::string& f : files()) {
      std::string p = path_ + "/" + f;
      if (::unlink(p.c_str()) != 0) ::rmdir(p.c_str());
    }
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    DIR* d = ::opendir(path_.c_str());
    while (dirent* e = d ? ::readdir(d) : nullptr)
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.push_back(e->d_name);
    if (d) ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file whose header is `header` (unpadded) followed by `data_bytes` zero bytes.
std::string craft(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no lloco::Error thrown>";
}

std::string bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// Exact i64 access: from_vector/to_vector go through double and would round values beyond 2^53.
Tensor i64_tensor(const std::vector<int64_t>& values, const Shape& shape) {
  Tensor t = empty(shape, DType::I64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}
std::vector<int64_t> int_values(const Tensor& t) {
  Tensor c = t.contiguous();
  if (c.dtype() == DType::I32) return std::vector<int64_t>(c.data<int32_t>(), c.data<int32_t>() + c.numel());
  return std::vector<int64_t>(c.data<int64_t>(), c.data<int64_t>() + c.numel());
}

std::vector<std::pair<std::string, Tensor>> all_dtype_tensors() {
  std::vector<std::pair<std::string, Tensor>> ts;
  ts.emplace_back("f32", from_vector(std::vector<float>{1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7e5f}, {2, 3}, DType::F32));
  ts.emplace_back("f16", from_vector(std::vector<float>{1.5f, -2.25f, 65504.f, 0.f}, {4}, DType::F16));
  ts.emplace_back("bf16.odd", from_vector(std::vector<float>{1.f, -0.5f, 3.140625f}, {3}, DType::BF16));
  ts.emplace_back("f64", from_vector(std::vector<double>{3.141592653589793, -1e-300}, {2, 1}, DType::F64));
  ts.emplace_back("i32", from_vector(std::vector<int32_t>{-2147483647 - 1, 7, 2147483647}, {3}, DType::I32));
  ts.emplace_back("i64", i64_tensor({(int64_t{1} << 62) + 1, -5}, {1, 2}));
  ts.emplace_back("scalar", scalar(0.25, DType::F32));
  ts.emplace_back("empty", empty({0, 3}, DType::F64));
  // Non-contiguous input must be stored in C order.
  ts.emplace_back("transposed", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}, DType::F32).transpose(0, 1));
  return ts;
}

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir dir;
  auto ts = all_dtype_tensors();
  std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "caf\u00e9"}};
  save_safetensors(dir.file("rt.safetensors"), ts, meta);
  SafetensorsFile f = load_safetensors(dir.file("rt.safetensors"));
  ASSERT_EQ(f.size(), ts.size());
  EXPECT_EQ(f.metadata(), meta);
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& [name, src] = ts[i];
    EXPECT_EQ(f.names()[i], name) << "header keeps the given order";
    const Tensor& t = f.get(name);
    EXPECT_EQ(t.dtype(), src.dtype()) << name;
    EXPECT_EQ(t.shape(), src.shape()) << name;
    EXPECT_TRUE(t.is_contiguous()) << name;
    EXPECT_EQ(bytes_of(t), bytes_of(src)) << name;
  }
  EXPECT_EQ(f.get("transposed").to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(int_values(f.get("i64")), (std::vector<int64_t>{(int64_t{1} << 62) + 1, -5}));
  EXPECT_EQ(f.get("scalar").dim(), 0);
  EXPECT_DOUBLE_EQ(f.get("scalar").item(), 0.25);
  EXPECT_EQ(f.copied_tensors(), 0u) << "the writer lays data out aligned";
}

TEST(Safetensors, WriterPadsHeaderAndAlignsData) {
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"), all_dtype_tensors());
  std::string raw = read_all(dir.file("a.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_TRUE(raw[8 + n - 1] == ' ' || raw[8 + n - 1] == '}');
  SafetensorsHeader h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(),
                                                 raw.size(), "a.safetensors");
  for (const SafetensorsEntry& e : h.entries)
    EXPECT_EQ((h.data_start + e.begin) % dtype_size(*e.dtype), 0u) << e.name;
}

TEST(Safetensors, LoadIsZeroCopy) {
  TempDir dir;
  Tensor big = rand({256, 256}, 7, DType::F32);
  save_safetensors(dir.file("z.safetensors"), {{"big", big}, {"half", big.to(DType::BF16)}});
  size_t before = allocator_for(DeviceType::CPU).current_bytes();
  SafetensorsFile f = load_safetensors(dir.file("z.safetensors"));
  EXPECT_EQ(allocator_for(DeviceType::CPU).current_bytes(), before) << "load must not copy tensor data";
  const char* lo = static_cast<const char*>(f.mapping_data());
  for (const std::string& name : f.names()) {
    const char* p = static_cast<const char*>(f.get(name).data_ptr());
    EXPECT_GE(p, lo) << name;
    EXPECT_LE(p + f.get(name).nbytes(), lo + f.mapping_bytes()) << name;
  }
  EXPECT_EQ(f.copied_tensors(), 0u);
  EXPECT_EQ(bytes_of(f.get("big")), bytes_of(big));
}

TEST(Safetensors, TensorsOutliveTheFileObject) {
  TempDir dir;
  save_safetensors(dir.file("l.safetensors"), {{"x", from_vector(std::vector<float>{4, 5, 6}, {3})}});
  Tensor view;
  {
    SafetensorsFile f = load_safetensors(dir.file("l.safetensors"));
    view = f.get("x").narrow(0, 1, 2);
  }
  ::unlink(dir.file("l.safetensors").c_str());  // the mapping, not the path, keeps the data
  EXPECT_EQ(view.to_vector<float>(), (std::vector<float>{5, 6}));
}

TEST(Safetensors, LookupErrorsNameFileAndTensor) {
  TempDir dir;
  save_safetensors(dir.file("g.safetensors"), {{"present", scalar(1.0)}});
  SafetensorsFile f = load_safetensors(dir.file("g.safetensors"));
  EXPECT_TRUE(f.contains("present"));
  EXPECT_FALSE(f.contains("absent"));
  std::string msg = message_of([&] { f.get("absent"); });
  EXPECT_NE(msg.find("g.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("absent"), std::string::npos) << msg;
  msg = message_of([&] { load_safetensors(dir.file("missing.safetensors")); });
  EXPECT_NE(msg.find("missing.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

// ---- files written by the Python reference (tests/fixtures/gen_safetensors_fixtures.py) ----

std::string fixture(const std::string& name) { return std::string(LLOCO_FIXTURES_DIR) + "/safetensors/" + name; }

TEST(Safetensors, PythonWrittenFilesLoadWithExpectedValues) {
  nlohmann::json expected = nlohmann::json::parse(read_all(fixture("expected.json")));
  ASSERT_EQ(expected.size(), 3u);
  for (auto& [file, spec] : expected.items()) {
    SCOPED_TRACE(file);
    SafetensorsFile f = load_safetensors(fixture(file));
    EXPECT_EQ(f.names(), spec["order"].get<std::vector<std::string>>());
    EXPECT_EQ(f.metadata(), (spec["metadata"].get<std::map<std::string, std::string>>()));
    for (const auto& t : spec["tensors"]) {
      std::string name = t["name"];
      SCOPED_TRACE(name);
      const Tensor& x = f.get(name);
      EXPECT_EQ(safetensors_dtype_name(x.dtype()), t["dtype"].get<std::string>());
      EXPECT_EQ(x.shape(), t["shape"].get<Shape>());
      if (t.contains("exact")) {
        std::vector<std::string> got;
        for (int64_t v : int_values(x)) got.push_back(std::to_string(v));
        EXPECT_EQ(got, t["exact"].get<std::vector<std::string>>());
      } else {
        std::vector<double> got = x.to_vector<double>(), want = t["values"].get<std::vector<double>>();
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_EQ(got[i], want[i]) << "element " << i;
          EXPECT_EQ(std::signbit(got[i]), std::signbit(want[i])) << "element " << i;
        }
      }
    }
  }
}

TEST(Safetensors, UnalignedTensorsAreCopiedAligned) {
  std::string raw = read_all(fixture("unaligned.safetensors"));
  SafetensorsHeader h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(),
                                                 raw.size(), "unaligned.safetensors");
  size_t misaligned = 0;  // the mapping is page-aligned, so file offsets decide alignment
  for (const SafetensorsEntry& e : h.entries) misaligned += (h.data_start + e.begin) % dtype_size(*e.dtype) != 0;
  ASSERT_GE(misaligned, 2u) << "the fixture must exercise the copy path";
  SafetensorsFile f = load_safetensors(fixture("unaligned.safetensors"));
  EXPECT_EQ(f.copied_tensors(), misaligned);
  for (const std::string& n : f.names()) {
    const Tensor& t = f.get(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % dtype_size(t.dtype()), 0u) << n;
  }
}

TEST(Safetensors, UnsupportedDtypeIsNamed) {
  std::string msg = message_of([] { load_safetensors(fixture("unsupported_u8.safetensors")); });
  for (const char* part : {"unsupported dtype U8", "'mask'", "unsupported_u8.safetensors"})
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
}

// ---- malformed files: each must throw lloco::Error naming the file and the culprit ----

struct BadCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> expect;  // substrings of the error besides the file name
};

const std::string kA4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";

std::vector<BadCase> bad_cases() {
  std::string nine_dims = R"({"t":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})";
  return {
      {"short_file", std::string("\x01\x00\x00", 3), {"3 bytes", "shorter than the 8-byte"}},
      {"header_longer_than_file", le64(64) + "{}", {"header length 64", "larger than the 2 bytes"}},
      {"header_over_100mb", le64(200'000'000) + "{}", {"200000000", "exceeds the limit"}},
      {"empty_header", le64(0), {"JSON object"}},
      {"not_json", craft("{abc", 0), {"not valid UTF-8 JSON"}},
      {"trailing_garbage", craft("{} x", 0), {"not valid UTF-8 JSON"}},
      {"invalid_utf8", craft("{\"\xff\xfe\":1}", 0), {"not valid UTF-8 JSON"}},
      {"not_an_object", craft("[1, 2]", 0), {"JSON object"}},
      {"entry_not_object", craft(R"({"w":[1]})", 0), {"tensor 'w'", "must be an object"}},
      {"missing_field", craft(R"({"w":{"dtype":"F32","shape":[1]}})", 4), {"tensor 'w'", "missing field 'data_offsets'"}},
      {"extra_field", craft(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"strides":[1]}})", 4),
       {"tensor 'w'", "unexpected field 'strides'"}},
      {"unknown_dtype", craft(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "unknown dtype \"F33\""}},
      {"dtype_not_string", craft(R"({"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "dtype must be a string", "32"}},
      {"shape_not_array", craft(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "shape must be an array", "4"}},
      {"shape_negative", craft(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "shape must hold non-negative integers", "-1"}},
      {"shape_float", craft(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "shape", "1.5"}},
      {"shape_overflow", craft(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "overflows", "4294967296"}},
      {"bytes_overflow", craft(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4),
       {"tensor 'w'", "overflows 64 bits"}},
      {"offsets_not_pair", craft(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
       {"tensor 'w'", "data_offsets must be an array of two integers"}},
      {"offsets_not_integers", craft(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}})", 4),
       {"tensor 'w'", "data_offsets", "\"0\""}},
      {"offsets_reversed", craft(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
       {"tensor 'w'", "begin 8 is after end 4"}},
      {"end_beyond_buffer", craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
       {"tensor 'w'", "end 8", "data buffer of 4 bytes"}},
      {"size_mismatch", craft(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       {"tensor 'w'", "span 8 bytes", "needs 12"}},
      {"overlap", craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       {"tensor 'b'", "overlaps tensor 'a'", "[4, 12]", "[0, 8]"}},
      {"hole", craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
       {"bytes [4, 8)", "hole before tensor 'b'"}},
      {"trailing_bytes", craft("{" + kA4 + "}", 8), {"8 bytes", "cover only 4", "trailing"}},
      {"duplicate_tensor", craft("{" + kA4 + "," + kA4 + "}", 4), {"duplicate key 'a'"}},
      {"duplicate_field", craft(R"({"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
       {"duplicate key 'dtype'", "'w'"}},
      {"metadata_not_object", craft(R"({"__metadata__":["x"]})", 0), {"__metadata__", "must be an object"}},
      {"metadata_value_not_string", craft(R"({"__metadata__":{"epoch":3}})", 0), {"__metadata__", "'epoch'", "3"}},
      {"unsupported_dtype", craft(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", 2),
       {"unsupported dtype BOOL", "'m'"}},
      {"sub_byte_dtype", craft(R"({"m":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2),
       {"tensor 'm'", "not a whole number of bytes"}},
      {"too_many_dims", craft(nine_dims, 4), {"tensor 't'", "9 dims"}},
  };
}

TEST(Safetensors, MalformedFilesAreRejected) {
  TempDir dir;
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.name);
    std::string path = dir.file(std::string(c.name) + ".safetensors");
    write_raw(path, c.bytes);
    std::string msg = message_of([&] { load_safetensors(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const std::string& part : c.expect) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' in " << msg;
  }
}

TEST(Safetensors, EveryTruncationIsRejected) {
  TempDir dir;
  save_safetensors(dir.file("full.safetensors"), {{"x", from_vector(std::vector<float>{1, 2, 3}, {3})}}, {{"k", "v"}});
  std::string full = read_all(dir.file("full.safetensors"));
  for (size_t len = 0; len < full.size(); ++len) {
    write_raw(dir.file("cut.safetensors"), full.substr(0, len));
    std::string msg = message_of([&] { load_safetensors(dir.file("cut.safetensors")); });
    EXPECT_NE(msg.find("cut.safetensors"), std::string::npos) << "length " << len << ": " << msg;
  }
}

TEST(Safetensors, TruncatedDataNamesTheTensor) {
  TempDir dir;
  save_safetensors(dir.file("t.safetensors"), {{"weights", zeros({16}, DType::F32)}});
  std::string full = read_all(dir.file("t.safetensors"));
  write_raw(dir.file("t.safetensors"), full.substr(0, full.size() - 3));
  std::string msg = message_of([&] { load_safetensors(dir.file("t.safetensors")); });
  for (const char* part : {"t.safetensors", "tensor 'weights'", "end 64", "61 bytes", "truncated"})
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
}

TEST(Safetensors, ValidEdgeFilesAreAccepted) {
  TempDir dir;
  const std::pair<const char*, std::string> ok[] = {
      {"no_tensors", craft("{}", 0)},
      {"leading_zero_sized", craft(R"({"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)" + kA4 + "}", 4)},
      {"zero_sized_at_end", craft("{" + kA4 + R"(,"z":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]}})", 4)},
      {"padded_header", craft("{" + kA4 + "}      ", 4)},
  };
  for (const auto& [name, bytes] : ok) {
    std::string path = dir.file(std::string(name) + ".safetensors");
    write_raw(path, bytes);
    EXPECT_NO_THROW(load_safetensors(path)) << name;
  }
}

// ---- atomic writes ----

TEST(AtomicFile, WritesAndReplacesWithoutLeavingTempFiles) {
  TempDir dir;
  write_file_atomic(dir.file("out.json"), "first");
  write_file_atomic(dir.file("out.json"), "second, longer");
  EXPECT_EQ(read_all(dir.file("out.json")), "second, longer");
  EXPECT_EQ(dir.files(), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, KeepsThePermissionsOfTheFileItReplaces) {
  TempDir dir;
  write_file_atomic(dir.file("p"), "x");
  ASSERT_EQ(::chmod(dir.file("p").c_str(), 0640), 0);
  write_file_atomic(dir.file("p"), "y");
  struct stat st;
  ASSERT_EQ(::stat(dir.file("p").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(AtomicFile, MissingDirectoryThrowsWithPathAndErrno) {
  TempDir dir;
  std::string path = dir.file("no/such/dir/out.safetensors");
  std::string msg = message_of([&] { save_safetensors(path, {{"x", scalar(1.0)}}); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  EXPECT_TRUE(dir.files().empty());
}

TEST(AtomicFile, FailedSaveLeavesExistingFileUntouched) {
  TempDir dir;
  std::string path = dir.file("ckpt.safetensors");
  write_file_atomic(path, "old contents");
  std::string msg = message_of([&] { save_safetensors(path, {{"w", scalar(1.0)}, {"b", scalar(2.0)}, {"w", scalar(3.0)}}); });
  EXPECT_NE(msg.find("duplicate tensor name 'w'"), std::string::npos) << msg;
  msg = message_of([&] { save_safetensors(path, {{"__metadata__", scalar(1.0)}}); });
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
  msg = message_of([&] { save_safetensors(path, {{"u", Tensor()}}); });
  EXPECT_NE(msg.find("tensor 'u' is undefined"), std::string::npos) << msg;
  msg = message_of([&] { save_safetensors(path, {{"bad\xff", scalar(1.0)}}); });
  EXPECT_NE(msg.find("not valid UTF-8"), std::string::npos) << msg;
  EXPECT_EQ(read_all(path), "old contents");
  EXPECT_EQ(dir.files(), std::vector<std::string>{"ckpt.safetensors"});
}

TEST(AtomicFile, AbandonedWriteRemovesTempAndKeepsTarget) {
  TempDir dir;
  write_file_atomic(dir.file("t"), "keep");
  {
    AtomicFile f(dir.file("t"));
    f.write("partial");
    EXPECT_EQ(dir.files().size(), 2u) << "temp file sits next to the target";
    EXPECT_EQ(f.temp_path().rfind(dir.file("t.tmp."), 0), 0u) << f.temp_path();
  }
  EXPECT_EQ(read_all(dir.file("t")), "keep");
  EXPECT_EQ(dir.files(), std::vector<std::string>{"t"});
}

TEST(AtomicFile, FailedRenameRemovesTemp) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.file("target").c_str(), 0755), 0);  // rename(file, directory) fails: EISDIR
  std::string msg = message_of([&] { write_file_atomic(dir.file("target"), "data"); });
  EXPECT_NE(msg.find("cannot rename"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("target")), std::string::npos) << msg;
  EXPECT_EQ(dir.files(), std::vector<std::string>{"target"});
}

TEST(AtomicFile, UseAfterCommitThrows) {
  TempDir dir;
  AtomicFile f(dir.file("once"));
  f.write("a");
  f.commit();
  EXPECT_THROW(f.write("b"), Error);
  EXPECT_THROW(f.commit(), Error);
  EXPECT_EQ(read_all(dir.file("once")), "a");
}

}  // namespace
}  // namespace lloco
