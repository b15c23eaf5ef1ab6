// Placeholder bodies until the CPU ops land (issue 4). Each throws a clear error.
#include "cpu_backend.h"

namespace itool {
#define ITOOL_NOT_YET(fn, P) \
  void CpuBackend::fn(const P&) { throw_error("cpu: op '" #fn "' is not implemented yet"); }
ITOOL_NOT_YET(gemm, GemmParams)
ITOOL_NOT_YET(embedding_forward, EmbeddingParams)
ITOOL_NOT_YET(embedding_backward, EmbeddingParams)
ITOOL_NOT_YET(rmsnorm_forward, RmsNormParams)
ITOOL_NOT_YET(rmsnorm_backward, RmsNormParams)
ITOOL_NOT_YET(rope, RopeParams)
ITOOL_NOT_YET(swiglu_forward, SwigluParams)
ITOOL_NOT_YET(swiglu_backward, SwigluParams)
ITOOL_NOT_YET(add, AddParams)
ITOOL_NOT_YET(bias_forward, BiasParams)
ITOOL_NOT_YET(bias_backward, BiasParams)
ITOOL_NOT_YET(attention_forward, AttentionParams)
ITOOL_NOT_YET(attention_backward, AttentionParams)
ITOOL_NOT_YET(kv_write, KvWriteParams)
ITOOL_NOT_YET(attention_decode, DecodeAttentionParams)
ITOOL_NOT_YET(logprob, LogprobParams)
ITOOL_NOT_YET(preference_loss, PreferenceParams)
ITOOL_NOT_YET(adamw, AdamWParams)
ITOOL_NOT_YET(sample, SampleParams)
double CpuBackend::sum_squares(const float*, int64_t) { throw_error("cpu: op 'sum_squares' is not implemented yet"); }
void CpuBackend::scale(float*, int64_t, float) { throw_error("cpu: op 'scale' is not implemented yet"); }
void CpuBackend::axpy(float*, const float*, int64_t, float) { throw_error("cpu: op 'axpy' is not implemented yet"); }
bool CpuBackend::has_nonfinite(const float*, int64_t) { throw_error("cpu: op 'has_nonfinite' is not implemented yet"); }
}  // namespace itool
