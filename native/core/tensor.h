// Tensor: a typed, shaped view on a device buffer. Storage is reference counted so
// that work in flight on a worker thread keeps its buffers alive even when the
// JavaScript handle is disposed meanwhile.
#pragma once
#include <memory>
#include <numeric>
#include <string>
#include <vector>
#include "common.h"

namespace itool {

class Backend;

struct Storage {
  Backend* backend = nullptr;  // owner of the memory; frees it in the destructor
  void* data = nullptr;
  size_t bytes = 0;
  Storage(Backend* b, size_t n);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  void* data() const { return storage ? storage->data : nullptr; }
  template <class T> T* ptr() const { return static_cast<T*>(data()); }
  Device device() const;
  std::string shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

// Allocates a tensor on the backend; contents undefined unless zero = true.
Tensor make_tensor(Backend* b, DType dtype, std::vector<int64_t> shape, bool zero = false);

// Checks used by every op entry: they throw TypeError/RangeError naming op and argument.
void expect_dtype(const Tensor& t, DType d, const char* op, const char* arg);
void expect_shape(const Tensor& t, const std::vector<int64_t>& shape, const char* op, const char* arg);
void expect_rank(const Tensor& t, size_t rank, const char* op, const char* arg);
void expect_device(const Tensor& t, const Device& d, const char* op, const char* arg);

}  // namespace itool
