#include "tensor.h"
#include "ops.h"

namespace itool {

Storage::Storage(Backend* b, size_t n) : backend(b), bytes(n) {
  data = backend->alloc(n == 0 ? 1 : n);
}
Storage::~Storage() {
  if (data) backend->dealloc(data);
}

Device Tensor::device() const { return storage ? storage->backend->device() : Device{}; }

Tensor make_tensor(Backend* b, DType dtype, std::vector<int64_t> shape, bool zero) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  int64_t n = 1;
  for (auto s : t.shape) {
    if (s < 0) throw_range("tensor dimension must be >= 0, got " + std::to_string(s));
    if (s != 0 && n > (int64_t(1) << 40) / s)
      throw_range("tensor of shape " + t.shape_str() + " is too large");
    n *= s;
  }
  t.storage = std::make_shared<Storage>(b, static_cast<size_t>(n) * dtype_size(dtype));
  if (zero && n > 0) b->memset_zero(t.storage->data, t.storage->bytes);
  return t;
}

void expect_dtype(const Tensor& t, DType d, const char* op, const char* arg) {
  if (t.dtype != d)
    throw_type(std::string(op) + ": argument '" + arg + "' must have dtype " + dtype_name(d) +
               ", got " + dtype_name(t.dtype));
}
void expect_shape(const Tensor& t, const std::vector<int64_t>& shape, const char* op, const char* arg) {
  if (t.shape != shape) {
    Tensor want;
    want.shape = shape;
    throw_range(std::string(op) + ": argument '" + arg + "' must have shape " + want.shape_str() +
                ", got " + t.shape_str());
  }
}
void expect_rank(const Tensor& t, size_t rank, const char* op, const char* arg) {
  if (t.shape.size() != rank)
    throw_range(std::string(op) + ": argument '" + arg + "' must have rank " + std::to_string(rank) +
                ", got shape " + t.shape_str());
}
void expect_device(const Tensor& t, const Device& d, const char* op, const char* arg) {
  if (t.device() != d)
    throw_type(std::string(op) + ": argument '" + arg + "' is on " + t.device().str() + ", expected " +
               d.str());
}

}  // namespace itool
