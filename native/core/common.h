// itool native core: shared types, errors and checks.
// Everything in native/ throws itool::Error (never aborts); native/addon turns it
// into a JavaScript TypeError / RangeError / Error with the same message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace itool {

enum class DType : int32_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
  }
  return "?";
}

enum class DeviceKind : int32_t { CPU = 0, CUDA = 1 };
struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const {
    return kind == DeviceKind::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
};

// Error kinds map to JS error classes at the boundary.
enum class ErrorKind { Type, Range, Generic, OutOfMemory };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
 private:
  ErrorKind kind_;
};

[[noreturn]] inline void throw_type(const std::string& m) { throw Error(ErrorKind::Type, m); }
[[noreturn]] inline void throw_range(const std::string& m) { throw Error(ErrorKind::Range, m); }
[[noreturn]] inline void throw_error(const std::string& m) { throw Error(ErrorKind::Generic, m); }

#define ITOOL_CHECK(cond, msg)                                  \
  do {                                                          \
    if (!(cond)) ::itool::throw_error(std::string(msg));        \
  } while (0)
#define ITOOL_CHECK_RANGE(cond, msg)                            \
  do {                                                          \
    if (!(cond)) ::itool::throw_range(std::string(msg));        \
  } while (0)

// bf16 / f16 <-> f32 conversion, round-to-nearest-even, NaN kept quiet.
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

}  // namespace itool
