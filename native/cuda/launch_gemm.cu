// GEMM launcher: cuBLASLt when the build found cuBLAS (ITOOL_WITH_CUBLAS), the
// built-in tensor-core kernel (kernels/gemm.cuh) otherwise or for operand types
// cuBLASLt is not given here.
#include <cstdlib>
#include <mutex>
#include <string>
#include "kernels/gemm.cuh"
#include "launch.h"
#ifdef ITOOL_WITH_CUBLAS
#include <cublasLt.h>
#endif

namespace itool {
namespace cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
    throw_error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
  }
}
void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_error(std::string("cuda: ") + what + ": kernel launch failed: " + cudaGetErrorString(e));
}

bool blas_available() {
#ifdef ITOOL_WITH_CUBLAS
  return true;
#else
  return false;
#endif
}

#ifdef ITOOL_WITH_CUBLAS
static void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw_error(std::string("cuda: cuBLASLt ") + what + " failed with status " + std::to_string(static_cast<int>(s)));
}
static cudaDataType_t lt_type(DType t) {
  switch (t) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}
// cuBLASLt that cannot start (a library of another CUDA major, say) leaves the built-in
// GEMM in charge instead of failing every product.
static bool g_blas_broken = false;
static std::mutex g_blas_mu;
void blas_init(Ctx& c) {
  std::lock_guard<std::mutex> lk(g_blas_mu);
  if (c.blas || g_blas_broken) return;
  cublasLtHandle_t h = nullptr;
  if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    g_blas_broken = true;
    return;
  }
  c.blas = h;
  c.blas_ws_bytes = 32u << 20;
  c.blas_ws = c.pool->alloc(c.blas_ws_bytes);
}
void blas_destroy(Ctx& c) {
  if (c.blas) cublasLtDestroy(static_cast<cublasLtHandle_t>(c.blas));
  c.blas = nullptr;
  if (c.blas_ws) c.pool->dealloc(c.blas_ws);
  c.blas_ws = nullptr;
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt gets
// (B, A) swapped with m = N, n = M.
static bool gemm_lt(Ctx& c, const GemmParams& p) {
  const bool half_in = p.a_type == p.b_type && (p.a_type == DType::BF16 || p.a_type == DType::F16);
  const bool f32_in = p.a_type == DType::F32 && p.b_type == DType::F32 && p.c_type == DType::F32;
  if (!half_in && !f32_in) return false;
  if (half_in && !(p.c_type == DType::F32 || p.c_type == p.a_type)) return false;
  if (!c.blas) blas_init(c);
  if (!c.blas) return false;
  cublasLtHandle_t h = static_cast<cublasLtHandle_t>(c.blas);
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  struct Cleanup {
    cublasLtMatmulDesc_t& op; cublasLtMatrixLayout_t &la, &lb, &lc; cublasLtMatmulPreference_t& pref;
    ~Cleanup() {
      if (pref) cublasLtMatmulPreferenceDestroy(pref);
      if (lc) cublasLtMatrixLayoutDestroy(lc);
      if (lb) cublasLtMatrixLayoutDestroy(lb);
      if (la) cublasLtMatrixLayoutDestroy(la);
      if (op) cublasLtMatmulDescDestroy(op);
    }
  } cleanup{op, la, lb, lc, pref};
  lt_check(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate");
  // column-major operand 1 is B (op = transB ? T : N), operand 2 is A (op = transA ? T : N)
  cublasOperation_t t1 = p.transB ? CUBLAS_OP_T : CUBLAS_OP_N, t2 = p.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  lt_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t1, sizeof(t1)), "set TRANSA");
  lt_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &t2, sizeof(t2)), "set TRANSB");
  const uint64_t m = p.N, n = p.M, k = p.K;
  // stored shapes (column-major rows x cols)
  lt_check(cublasLtMatrixLayoutCreate(&la, lt_type(p.b_type), p.transB ? k : m, p.transB ? m : k, p.ldb), "layout B");
  lt_check(cublasLtMatrixLayoutCreate(&lb, lt_type(p.a_type), p.transA ? n : k, p.transA ? k : n, p.lda), "layout A");
  lt_check(cublasLtMatrixLayoutCreate(&lc, lt_type(p.c_type), m, n, p.ldc), "layout C");
  if (p.batch > 1) {
    int32_t bc = static_cast<int32_t>(p.batch);
    int64_t sa = p.strideB, sb = p.strideA, sc = p.strideC;
    lt_check(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)), "batch");
    lt_check(cublasLtMatrixLayoutSetAttribute(lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)), "batch");
    lt_check(cublasLtMatrixLayoutSetAttribute(lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)), "batch");
    lt_check(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof(sa)), "stride");
    lt_check(cublasLtMatrixLayoutSetAttribute(lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof(sb)), "stride");
    lt_check(cublasLtMatrixLayoutSetAttribute(lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof(sc)), "stride");
  }
  lt_check(cublasLtMatmulPreferenceCreate(&pref), "PreferenceCreate");
  uint64_t ws = c.blas_ws_bytes;
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
           "set workspace");
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, lc, lc, pref, 1, &res, &found) != CUBLAS_STATUS_SUCCESS ||
      found == 0)
    return false;  // no algorithm for this shape: the built-in kernel takes it
  const float alpha = p.alpha, beta = p.beta;
  // a failed launch leaves C untouched: the built-in kernel then computes it
  return cublasLtMatmul(h, op, &alpha, p.B, la, p.A, lb, &beta, p.C, lc, p.C, lc, &res.algo, c.blas_ws,
                        c.blas_ws_bytes, c.stream) == CUBLAS_STATUS_SUCCESS;
}
#else
void blas_init(Ctx&) {}
void blas_destroy(Ctx&) {}
#endif

static bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void gemm(Ctx& c, const GemmParams& p) {
  if (p.M == 0 || p.N == 0 || p.batch == 0) return;
#ifdef ITOOL_WITH_CUBLAS
  // ITOOL_CUDA_GEMM=builtin keeps cuBLASLt out (tests of the built-in kernels, comparisons)
  static const bool builtin_only = [] {
    const char* e = std::getenv("ITOOL_CUDA_GEMM");
    return e && std::string(e) == "builtin";
  }();
  if (!builtin_only && gemm_lt(c, p)) return;
#endif
  GemmArgs a{};
  a.M = p.M; a.N = p.N; a.K = p.K;
  a.A = p.A; a.lda = p.lda; a.strideA = p.strideA; a.a_type = static_cast<int>(p.a_type); a.transA = p.transA;
  a.B = p.B; a.ldb = p.ldb; a.strideB = p.strideB; a.b_type = static_cast<int>(p.b_type); a.transB = p.transB;
  a.C = p.C; a.ldc = p.ldc; a.strideC = p.strideC; a.c_type = static_cast<int>(p.c_type);
  a.alpha = p.alpha; a.beta = p.beta;
  a.a_vec = p.a_type == DType::BF16 && aligned16(p.A) && p.lda % 8 == 0 && (p.batch == 1 || p.strideA % 8 == 0);
  a.b_vec = p.b_type == DType::BF16 && aligned16(p.B) && p.ldb % 8 == 0 && (p.batch == 1 || p.strideB % 8 == 0);
  const bool f32 = p.a_type == DType::F32 && p.b_type == DType::F32;
  // the pipelined kernel needs 16-byte vectors along each operand's contiguous dimension
  // that never straddle the matrix edge: that dimension a multiple of 8
  const bool pipelined = a.a_vec && a.b_vec && (p.transA ? p.M % 8 == 0 : p.K % 8 == 0) &&
                         (p.transB ? p.K % 8 == 0 : p.N % 8 == 0);
  const int64_t bm = f32 ? 64 : kGemmBM, bn = f32 ? 64 : kGemmBN;
  const int64_t gx = (p.N + bn - 1) / bn, gy = (p.M + bm - 1) / bm;
  if (gy > 65535) throw_range("cuda: gemm: M = " + std::to_string(p.M) + " is too large for one launch");
  for (int64_t b0 = 0; b0 < p.batch; b0 += 65535) {
    a.batch0 = b0;
    dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(std::min<int64_t>(65535, p.batch - b0)));
    if (f32)
      ITOOL_LAUNCH(gemm_f32_kernel, grid, 256, 0, c.stream)(a);
    else if (pipelined)
      ITOOL_LAUNCH(gemm_wmma_pipelined_kernel, grid, kGemmThreads, 0, c.stream)(a);
    else
      ITOOL_LAUNCH(gemm_wmma_kernel, grid, kGemmThreads, 0, c.stream)(a);
    check_launch("gemm");
  }
}

}  // namespace cuda
}  // namespace itool
