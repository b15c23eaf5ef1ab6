// Pieces the model's source files share (native/core/model*.cpp); not part of the model's interface.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>
#include "model.h"
#include "safetensors.h"

namespace itool {
namespace model_detail {

// splitmix64 with Box-Muller normals: the random initialisation and LoRA's A
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  bool decay;
  int* slot;
};

// Lays the tensors of a group out in one buffer (decayed ones first, 64-byte aligned starts).
void layout_group(ParamGroup& g, std::vector<Spec>& specs);
std::string shape_str(const std::vector<int64_t>& s);
// in and out features of projection p
void proj_dims(const ModelConfig& c, int p, int64_t& in, int64_t& out);

}  // namespace model_detail
}  // namespace itool
