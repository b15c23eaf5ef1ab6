#include "cpu_features.h"
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace itool {

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
#elif defined(__aarch64__)
  f.neon = true;
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static CpuFeatures f = detect();
  return f;
}

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> v;
  if (avx2) v.push_back("avx2");
  if (fma) v.push_back("fma");
  if (avx512f) v.push_back("avx512f");
  if (avx512bw) v.push_back("avx512bw");
  if (avx512vl) v.push_back("avx512vl");
  if (avx512dq) v.push_back("avx512dq");
  if (neon) v.push_back("neon");
  return v;
}

bool cpu_level_supported(CpuLevel level) {
  const auto& f = cpu_features();
  switch (level) {
    case CpuLevel::Scalar: return true;
    case CpuLevel::Avx2:
#if defined(ITOOL_HAVE_AVX2)
      return f.avx2 && f.fma;
#else
      return false;
#endif
    case CpuLevel::Avx512:
#if defined(ITOOL_HAVE_AVX512)
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma;
#else
      return false;
#endif
    case CpuLevel::Neon:
#if defined(ITOOL_HAVE_NEON)
      return f.neon;
#else
      return false;
#endif
  }
  return false;
}

static CpuLevel best_level() {
  if (cpu_level_supported(CpuLevel::Avx512)) return CpuLevel::Avx512;
  if (cpu_level_supported(CpuLevel::Avx2)) return CpuLevel::Avx2;
  if (cpu_level_supported(CpuLevel::Neon)) return CpuLevel::Neon;
  return CpuLevel::Scalar;
}

static std::atomic<int>& level_slot() {
  static std::atomic<int> slot([] {
    CpuLevel l = best_level();
    if (const char* e = std::getenv("ITOOL_CPU")) {
      CpuLevel want = l;
      if (!std::strcmp(e, "scalar")) want = CpuLevel::Scalar;
      else if (!std::strcmp(e, "avx2")) want = CpuLevel::Avx2;
      else if (!std::strcmp(e, "avx512")) want = CpuLevel::Avx512;
      else if (!std::strcmp(e, "neon")) want = CpuLevel::Neon;
      if (cpu_level_supported(want)) l = want;
    }
    return static_cast<int>(l);
  }());
  return slot;
}

CpuLevel cpu_level() { return static_cast<CpuLevel>(level_slot().load()); }

void set_cpu_level(CpuLevel level) {
  level_slot().store(static_cast<int>(cpu_level_supported(level) ? level : best_level()));
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::Scalar: return "scalar";
    case CpuLevel::Avx2: return "avx2";
    case CpuLevel::Avx512: return "avx512";
    case CpuLevel::Neon: return "neon";
  }
  return "?";
}

}  // namespace itool
