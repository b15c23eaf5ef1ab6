// f32 GEMM on the CPU, BLIS/GotoBLAS style.
//
//   for jc (nc columns of C)            B block [kc, nc] packed into NR-column panels
//     for pc (kc of the depth, in order)
//       for ic (mc rows of C)           A block [mc, kc] packed into MR-row panels
//         for jr (NR panels), ir (MR panels): micro-kernel on a MR x NR tile of C
//
// Packing handles both transposes and the edges (panels are zero-padded), so one
// micro-kernel per instruction set serves all four transpose combinations.
//
// Threads: C is cut into a static grid of rectangles, one per thread, each computed
// whole by one thread with its own packing buffers (no barriers, so it also works
// when called from inside a pool job, where the pool runs the parts one after the
// other). The depth loop always runs in the same order with the same kc, and each
// C element is one FMA chain per kc block, so the result does not depend on the
// thread count or on how C was cut: bitwise identical for a given kernel level.
//
// Batches: when there are at least as many batch entries as threads and the
// matrices are small, threads take whole batch entries instead.
//
// B may be bf16 (b_type BF16, A and C f32): weights in half the memory. Values are
// widened to f32 exactly (a shift): by the kernel's bf16 packing and dot products where
// it has them (AVX-512), else block by block into a per-thread buffer that is then packed
// as usual. Either way the result is bitwise the one for the f32 matrix with the same
// values.
#include "gemm.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include "../core/cpu_features.h"
#include "../core/threadpool.h"
#include "gemm_kernels.h"

#if defined(ITOOL_WITH_BLAS)
#if defined(ITOOL_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
#endif

namespace itool {
namespace cpu {

namespace {

// ------------------------------------------------------------------ kernels
const GemmKernel* kernel_for(CpuLevel level) {
  switch (level) {
#if defined(ITOOL_HAVE_AVX512)
    case CpuLevel::Avx512: return gemm_kernel_avx512();
#endif
#if defined(ITOOL_HAVE_AVX2)
    case CpuLevel::Avx2: return gemm_kernel_avx2();
#endif
#if defined(ITOOL_HAVE_NEON)
    case CpuLevel::Neon: return gemm_kernel_neon();
#endif
    default: return gemm_kernel_scalar();
  }
}

#if defined(ITOOL_WITH_BLAS)
// ITOOL_GEMM=blas sends sgemm to the system BLAS found at build time.
bool blas_requested() {
  static const bool v = [] {
    const char* e = std::getenv("ITOOL_GEMM");
    return e != nullptr && std::string(e) == "blas";
  }();
  return v;
}
#endif

// ITOOL_GEMM_BLOCK=kc,mc,nc overrides the kernel's cache blocking (for tuning on a
// new machine; the result bits depend on kc).
GemmKernel with_blocking(const GemmKernel& k) {
  static const int* over = [] {
    static int v[3] = {0, 0, 0};
    if (const char* e = std::getenv("ITOOL_GEMM_BLOCK")) {
      if (std::sscanf(e, "%d,%d,%d", &v[0], &v[1], &v[2]) != 3 || v[0] < 1 || v[1] < 1 || v[2] < 1)
        v[0] = v[1] = v[2] = 0;
    }
    return v;
  }();
  GemmKernel r = k;
  if (over[0] > 0) {
    r.kc = over[0];
    r.mc = std::max(over[1], k.mr);
    r.nc = std::max(over[2], k.nr);
  }
  return r;
}

// ------------------------------------------------------------------ buffers
struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      p = nullptr;
      n = 0;
      size_t bytes = (want * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw Error(ErrorKind::OutOfMemory, "gemm: out of memory for packing buffers");
      n = want;
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};
struct PackBufs {
  AlignedBuf a, b, wide;  // wide: a bf16 block of B widened to f32
};
PackBufs& pack_bufs() {
  static thread_local PackBufs bufs;
  return bufs;
}

// ------------------------------------------------------------------ packing
// op(A)[i, k] = transA ? A[k * lda + i] : A[i * lda + k]
// Packs rows [i0, i0 + mc) and depth [k0, k0 + kc) into ceil(mc / mr) panels of kc * mr.
void pack_a(const GemmKernel& kr, int64_t mc, int64_t kc, const float* A, int64_t lda, bool trans, int64_t i0,
            int64_t k0, float* out) {
  const int mr = kr.mr;
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int h = static_cast<int>(std::min<int64_t>(mr, mc - ip));
    float* dst = out + ip * kc;
    if (!trans && kr.pack_rows) {
      kr.pack_rows(mr, h, kc, A + (i0 + ip) * lda + k0, lda, dst);
    } else if (trans && kr.pack_cols) {
      kr.pack_cols(mr, h, kc, A + k0 * lda + (i0 + ip), lda, dst);
    } else if (trans) {
      const float* src = A + k0 * lda + (i0 + ip);
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * lda;
        float* d = dst + k * mr;
        int i = 0;
        for (; i < h; ++i) d[i] = s[i];
        for (; i < mr; ++i) d[i] = 0.f;
      }
    } else {
      for (int i = 0; i < h; ++i) {
        const float* s = A + (i0 + ip + i) * lda + k0;
        float* d = dst + i;
        for (int64_t k = 0; k < kc; ++k) d[k * mr] = s[k];
      }
      for (int i = h; i < mr; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * mr + i] = 0.f;
    }
  }
}

// op(B)[k, j] = transB ? B[j * ldb + k] : B[k * ldb + j]
// Packs depth [k0, k0 + kc) and columns [j0, j0 + nc) into ceil(nc / nr) panels of kc * nr.
void pack_b(const GemmKernel& kr, int64_t kc, int64_t nc, const float* B, int64_t ldb, bool trans, int64_t k0,
            int64_t j0, float* out) {
  const int nr = kr.nr;
  for (int64_t jp = 0; jp < nc; jp += nr) {
    const int w = static_cast<int>(std::min<int64_t>(nr, nc - jp));
    float* dst = out + jp * kc;
    if (trans && kr.pack_rows) {
      kr.pack_rows(nr, w, kc, B + (j0 + jp) * ldb + k0, ldb, dst);
    } else if (!trans && kr.pack_cols) {
      kr.pack_cols(nr, w, kc, B + k0 * ldb + (j0 + jp), ldb, dst);
    } else if (!trans) {
      const float* src = B + k0 * ldb + (j0 + jp);
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * ldb;
        float* d = dst + k * nr;
        if (w == nr) {
          std::memcpy(d, s, sizeof(float) * nr);
        } else {
          int j = 0;
          for (; j < w; ++j) d[j] = s[j];
          for (; j < nr; ++j) d[j] = 0.f;
        }
      }
    } else {
      for (int j = 0; j < w; ++j) {
        const float* s = B + (j0 + jp + j) * ldb + k0;
        float* d = dst + j;
        for (int64_t k = 0; k < kc; ++k) d[k * nr] = s[k];
      }
      for (int j = w; j < nr; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = 0.f;
    }
  }
}

// bf16 -> f32 is exact: the 16 bits are the high half of the f32. The kernel's own
// vectorised loop when it has one.
inline void widen_bf16(const GemmKernel& kr, const uint16_t* src, float* dst, int64_t n) {
  if (kr.widen_bf16) kr.widen_bf16(src, dst, n);
  else widen_bf16_loop(src, dst, n);
}

// pack_b for a bf16 B: the [kc, nc] block of op(B) is widened into a contiguous f32
// block (in B's own orientation) and packed from there.
void pack_b16(const GemmKernel& kr, int64_t kc, int64_t nc, const uint16_t* B, int64_t ldb, bool trans, int64_t k0,
              int64_t j0, float* out) {
  if (trans && kr.pack_rows_bf16) {  // straight from bf16, panel by panel
    const int nr = kr.nr;
    for (int64_t jp = 0; jp < nc; jp += nr)
      kr.pack_rows_bf16(nr, static_cast<int>(std::min<int64_t>(nr, nc - jp)), kc, B + (j0 + jp) * ldb + k0, ldb,
                        out + jp * kc);
    return;
  }
  float* wide = pack_bufs().wide.get(static_cast<size_t>(kc * nc));
  if (trans) {  // B stored [N, K]: rows j0.., columns k0..
    for (int64_t j = 0; j < nc; ++j) widen_bf16(kr, B + (j0 + j) * ldb + k0, wide + j * kc, kc);
    pack_b(kr, kc, nc, wide, kc, true, 0, 0, out);
  } else {  // B stored [K, N]: rows k0.., columns j0..
    for (int64_t k = 0; k < kc; ++k) widen_bf16(kr, B + (k0 + k) * ldb + j0, wide + k * nc, nc);
    pack_b(kr, kc, nc, wide, nc, false, 0, 0, out);
  }
}

// ------------------------------------------------------------------ one rectangle of C
struct Mat {
  const float* A;
  const void* B;  // f32, or bf16 when b16
  float* C;
  bool b16 = false;
};

// C[m0:m1, n0:n1] of one batch entry, computed by the calling thread alone.
void gemm_region(const GemmKernel& kr, const GemmParams& p, const Mat& x, int64_t m0, int64_t m1, int64_t n0,
                 int64_t n1) {
  if (m0 >= m1 || n0 >= n1) return;
  const int mr = kr.mr, nr = kr.nr;
  const int64_t K = p.K;
  const int64_t kc_max = std::min<int64_t>(kr.kc, K);
  const int64_t rows = m1 - m0;
  const int64_t mc_max = std::min<int64_t>((kr.mc / mr) * mr, (rows + mr - 1) / mr * mr);
  // When all rows fit one A block, B is read once anyway: keep its packed block
  // small enough to stay in L2 (about 512 KiB) instead of kr.nc.
  int64_t nc_max = kr.nc;
  if (rows <= mc_max) nc_max = std::max<int64_t>(nr, ((512 * 1024 / 4) / kc_max) / nr * nr);
  nc_max = std::min<int64_t>(nc_max, (n1 - n0 + nr - 1) / nr * nr);

  // When all rows fit one A block and the packed A for the whole depth is small
  // (<= 4 MiB), A is packed once up front instead of once per column block.
  const bool a_once = rows <= mc_max && nc_max < n1 - n0 && mc_max * K <= (int64_t(1) << 20);

  PackBufs& bufs = pack_bufs();
  float* pa = bufs.a.get(static_cast<size_t>(mc_max * (a_once ? K : kc_max)));
  float* pb = bufs.b.get(static_cast<size_t>(nc_max * kc_max));
  if (a_once)
    for (int64_t pc = 0; pc < K; pc += kc_max)
      pack_a(kr, rows, std::min(kc_max, K - pc), x.A, p.lda, p.transA, m0, pc, pa + pc * mc_max);

  for (int64_t jc = n0; jc < n1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const float beta = pc == 0 ? p.beta : 1.0f;
      if (x.b16) pack_b16(kr, kc, nc, static_cast<const uint16_t*>(x.B), p.ldb, p.transB, pc, jc, pb);
      else pack_b(kr, kc, nc, static_cast<const float*>(x.B), p.ldb, p.transB, pc, jc, pb);
      for (int64_t ic = m0; ic < m1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, m1 - ic);
        const float* pa_blk = pa;
        if (a_once) pa_blk = pa + pc * mc_max;
        else pack_a(kr, mc, kc, x.A, p.lda, p.transA, ic, pc, pa);
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int m = static_cast<int>(std::min<int64_t>(mr, mc - ir));
          const float* a = pa_blk + ir * kc;
          float* c = x.C + (ic + ir) * p.ldc + jc;
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int n = static_cast<int>(std::min<int64_t>(nr, nc - jr));
            kr.tile(m, n, kc, a, pb + jr * kc, c + jr, p.ldc, p.alpha, beta);
          }
        }
      }
    }
  }
}

// C = beta * C (K == 0 or alpha == 0); beta == 0 writes zeros without reading C.
void scale_c(const GemmParams& p, float* C) {
  for (int64_t i = 0; i < p.M; ++i) {
    float* r = C + i * p.ldc;
    if (p.beta == 0.f) {
      std::memset(r, 0, sizeof(float) * p.N);
    } else if (p.beta != 1.f) {
      for (int64_t j = 0; j < p.N; ++j) r[j] *= p.beta;
    }
  }
}

Mat batch_mat(const GemmParams& p, int64_t b) {
  const bool b16 = p.b_type == DType::BF16;
  const void* B = b16 ? static_cast<const void*>(static_cast<const uint16_t*>(p.B) + b * p.strideB)
                      : static_cast<const void*>(static_cast<const float*>(p.B) + b * p.strideB);
  return {static_cast<const float*>(p.A) + b * p.strideA, B, static_cast<float*>(p.C) + b * p.strideC, b16};
}

void gemm_one(const GemmKernel& kr, const GemmParams& p, const Mat& x) {
  if (p.K == 0 || p.alpha == 0.f) {
    scale_c(p, x.C);
    return;
  }
  gemm_region(kr, p, x, 0, p.M, 0, p.N);
}

// Cuts C into tm x tn rectangles (tm * tn <= nthreads): rows in multiples of mr,
// columns in multiples of nr. Every thread packs the B columns and A rows of its
// rectangle (A once per column block of nc): the grid with the least packing per
// thread wins, among those that give each thread at least 2 panels of its dimension.
int64_t blocks_of(int64_t n, int64_t b) { return (n + b - 1) / b; }

void plan_grid(const GemmKernel& kr, int64_t M, int64_t N, int64_t K, int nthreads, int& tm, int& tn) {
  const int64_t mpanels = blocks_of(M, kr.mr), npanels = blocks_of(N, kr.nr);
  double best = -1;
  tm = 1;
  tn = 1;
  for (int d = 1; d <= nthreads; ++d) {
    if (nthreads % d != 0) continue;
    const int gm = d, gn = nthreads / d;
    if ((gm > 1 && mpanels < 2 * int64_t(gm)) || (gn > 1 && npanels < 2 * int64_t(gn))) continue;
    const double rows = double(blocks_of(mpanels, gm) * kr.mr), cols = double(blocks_of(npanels, gn) * kr.nr);
    const double packing = double(K) * (cols + rows * double(blocks_of(int64_t(cols), kr.nc)));
    if (best < 0 || packing < best) {
      best = packing;
      tm = gm;
      tn = gn;
    }
  }
}

void split(int64_t n, int64_t unit, int parts, int idx, int64_t& b, int64_t& e) {
  const int64_t units = (n + unit - 1) / unit;
  const int64_t ub = units * idx / parts, ue = units * (idx + 1) / parts;
  b = std::min(n, ub * unit);
  e = std::min(n, ue * unit);
}

// ------------------------------------------------------------------ few rows, B^T
// With few rows of C and B stored [N, K] (activations times a weight in the
// [out, in] layout: decoding), packing B would cost as much as the product. The
// kernel's dot-product routine reads B in place instead; threads split the columns.
constexpr int64_t kDotsMaxRows = 12;  // measured: dots win up to ~12 rows, packing from ~16

bool use_dots(const GemmKernel& kr, const GemmParams& p) {
  return kr.dots != nullptr && p.transB && p.M <= kDotsMaxRows && p.K > 0 && p.alpha != 0.f;
}

void gemm_dots(const GemmKernel& kr, const GemmParams& p, int nt) {
  // op(A) rows must be contiguous along k: copy them when A is stored transposed.
  AlignedBuf rows;
  float* ta = p.transA ? rows.get(static_cast<size_t>(p.M * p.K)) : nullptr;
  const int64_t units = (p.N + 3) / 4;  // threads take whole groups of 4 columns
  const int parts = static_cast<int>(std::min<int64_t>(nt, units));
  for (int64_t b = 0; b < p.batch; ++b) {
    const Mat x = batch_mat(p, b);
    const float* A = x.A;
    int64_t lda = p.lda;
    if (p.transA) {
      for (int64_t i = 0; i < p.M; ++i)
        for (int64_t k = 0; k < p.K; ++k) ta[i * p.K + k] = x.A[k * p.lda + i];
      A = ta;
      lda = p.K;
    }
    auto part = [&](int tid) {
      int64_t n0, n1;
      split(p.N, 4, parts, tid, n0, n1);
      if (n0 >= n1) return;
      if (!x.b16) {
        kr.dots(p.M, n1 - n0, p.K, A, lda, static_cast<const float*>(x.B) + n0 * p.ldb, p.ldb, x.C + n0, p.ldc, p.alpha,
                p.beta);
        return;
      }
      if (kr.dots_bf16) {
        kr.dots_bf16(p.M, n1 - n0, p.K, A, lda, static_cast<const uint16_t*>(x.B) + n0 * p.ldb, p.ldb, x.C + n0,
                     p.ldc, p.alpha, p.beta);
        return;
      }
      // bf16 B: widen a few rows of B (columns of C) at a time; each C element is still
      // one dot product over k in order, so the chunking does not change it
      const int64_t rows = std::max<int64_t>(4, ((int64_t(32) << 10) / std::max<int64_t>(1, p.K)) / 4 * 4);
      float* wide = pack_bufs().wide.get(static_cast<size_t>(rows * p.K));
      const uint16_t* B16 = static_cast<const uint16_t*>(x.B);
      for (int64_t c0 = n0; c0 < n1; c0 += rows) {
        const int64_t nc = std::min(rows, n1 - c0);
        for (int64_t j = 0; j < nc; ++j) widen_bf16(kr, B16 + (c0 + j) * p.ldb, wide + j * p.K, p.K);
        kr.dots(p.M, nc, p.K, A, lda, wide, p.K, x.C + c0, p.ldc, p.alpha, p.beta);
      }
    };
    if (parts <= 1) {
      part(0);
    } else {
      ThreadPool::global().run([&](int tid, int) {
        if (tid < parts) part(tid);
      });
    }
  }
}

#if defined(ITOOL_WITH_BLAS)
void gemm_blas(const GemmParams& p) {
  for (int64_t b = 0; b < p.batch; ++b) {
    Mat x = batch_mat(p, b);
    cblas_sgemm(CblasRowMajor, p.transA ? CblasTrans : CblasNoTrans, p.transB ? CblasTrans : CblasNoTrans,
                static_cast<int>(p.M), static_cast<int>(p.N), static_cast<int>(p.K), p.alpha, x.A,
                static_cast<int>(p.lda), static_cast<const float*>(x.B), static_cast<int>(p.ldb), p.beta, x.C,
                static_cast<int>(p.ldc));
  }
}
#endif

void validate(const GemmParams& p) {
  if (p.a_type != DType::F32 || p.c_type != DType::F32 || (p.b_type != DType::F32 && p.b_type != DType::BF16))
    throw_type("gemm: the CPU engine computes in f32 (B may be bf16: weights widened while packed)");
  if (p.M < 0 || p.N < 0 || p.K < 0 || p.batch < 0)
    throw_range("gemm: M, N, K and batch must be >= 0 (got M=" + std::to_string(p.M) + " N=" +
                std::to_string(p.N) + " K=" + std::to_string(p.K) + " batch=" + std::to_string(p.batch) + ")");
  if (p.M == 0 || p.N == 0 || p.batch == 0) return;
  const int64_t a_cols = p.transA ? p.M : p.K, b_cols = p.transB ? p.K : p.N;
  if (p.K > 0 && p.lda < std::max<int64_t>(1, a_cols))
    throw_range("gemm: lda " + std::to_string(p.lda) + " is smaller than the row length " + std::to_string(a_cols));
  if (p.K > 0 && p.ldb < std::max<int64_t>(1, b_cols))
    throw_range("gemm: ldb " + std::to_string(p.ldb) + " is smaller than the row length " + std::to_string(b_cols));
  if (p.ldc < p.N) throw_range("gemm: ldc " + std::to_string(p.ldc) + " is smaller than N " + std::to_string(p.N));
  if (p.C == nullptr || (p.K > 0 && (p.A == nullptr || p.B == nullptr))) throw_type("gemm: null matrix pointer");
}

}  // namespace

const char* gemm_kernel_name() {
#if defined(ITOOL_WITH_BLAS)
  if (blas_requested()) return "blas";
#endif
  return kernel_for(cpu_level())->name;
}

void sgemm_threads(const GemmParams& p, int nthreads) {
  validate(p);
  if (p.M == 0 || p.N == 0 || p.batch == 0) return;
#if defined(ITOOL_WITH_BLAS)
  if (blas_requested() && p.b_type == DType::F32) {
    gemm_blas(p);
    return;
  }
#endif
  const GemmKernel kr = with_blocking(*kernel_for(cpu_level()));
  ThreadPool& pool = ThreadPool::global();
  int nt = std::max(1, std::min(nthreads, pool.size()));
  const double flops = 2.0 * double(p.M) * double(p.N) * double(p.K);
  // Below ~2 MFLOP per call (about 15 us on one core) waking the pool costs more than it saves.
  if (flops * double(p.batch) < 2.0e6) nt = 1;

  if (use_dots(kr, p)) {
    gemm_dots(kr, p, nt);
    return;
  }
  if (nt == 1) {
    for (int64_t b = 0; b < p.batch; ++b) gemm_one(kr, p, batch_mat(p, b));
    return;
  }
  // Whole batch entries per thread when they are small or divide evenly.
  if (p.batch >= nt && (p.batch % nt == 0 || flops < 4.0e6 || p.batch >= 4 * int64_t(nt))) {
    pool.run([&](int tid, int) {
      if (tid >= nt) return;
      const int64_t b0 = p.batch * tid / nt, b1 = p.batch * (tid + 1) / nt;
      for (int64_t b = b0; b < b1; ++b) gemm_one(kr, p, batch_mat(p, b));
    });
    return;
  }
  int tm = 1, tn = 1;
  plan_grid(kr, p.M, p.N, p.K, nt, tm, tn);
  for (int64_t b = 0; b < p.batch; ++b) {
    const Mat x = batch_mat(p, b);
    if (p.K == 0 || p.alpha == 0.f) {
      scale_c(p, x.C);
      continue;
    }
    pool.run([&](int tid, int) {
      if (tid >= tm * tn) return;
      int64_t m0, m1, n0, n1;
      split(p.M, kr.mr, tm, tid / tn, m0, m1);
      split(p.N, kr.nr, tn, tid % tn, n0, n1);
      gemm_region(kr, p, x, m0, m1, n0, n1);
    });
  }
}

void sgemm(const GemmParams& p) { sgemm_threads(p, ThreadPool::global().size()); }

}  // namespace cpu
}  // namespace itool
