// Portable kernel of SparseFullyConnected: plain C++, compiled without any ISA flag, so the extension
// runs (correctly, slowly) on any CPU OpenVINO runs on. It is also the reference the VNNI path is
// tested against: same quantisation arithmetic, same int32 sums, same final fma.
#include <cmath>

#include "kernel.hpp"

namespace pofa {

// Here, not in kernel_vnni.cpp: this runs on every CPU, so it must be compiled without AVX-512 flags.
bool vnni_supported() {
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the AVX-512 register state (XCR0).
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

uint8_t generic_quantize_one(float x, const QuantParams& qp) {
    float v = std::fma(x, qp.scale, qp.shift);
    v = v > 0.0f ? v : 0.0f;  // also maps NaN to 0, like _mm512_max_ps(v, 0)
    v = v < qp.qmax ? v : qp.qmax;
    return static_cast<uint8_t>(std::nearbyint(v));  // round half to even (default mode)
}

void generic_quantize(const float* x, int64_t K, int64_t m_begin, int64_t m_end, const QuantParams& qp, uint8_t* q) {
    for (int64_t m = m_begin; m < m_end; ++m)
        for (int64_t k = 0; k < K; ++k) q[m * K + k] = generic_quantize_one(x[m * K + k], qp);
}

void generic_rows_to_panel(const uint8_t* rows, int64_t M, int64_t N, uint8_t* panel) {
    const int64_t tt = panel_tile_tokens(M);
    for (int64_t i = 0; i < panel_tokens(M) * N; ++i) panel[i] = 0;
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) panel[panel_offset(m, n, N, tt)] = rows[m * N + n];
}

void generic_panel_to_rows(const uint8_t* panel, int64_t M, int64_t N, uint8_t* rows) {
    const int64_t tt = panel_tile_tokens(M);
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) rows[m * N + n] = panel[panel_offset(m, n, N, tt)];
}

float generic_gelu(float x) {
    using namespace gelu;
    const float z = x * kInvSqrt2;
    const float az = std::fabs(z);
    const bool inside = az < kZEnd;  // false for NaN, like the VNNI path's ordered compare
    const int i = inside ? static_cast<int>(az * kPerUnit) : 0;  // floor, as the VNNI path's rounded-down fma
    const float u = std::fma(-static_cast<float>(i), kWidth, az);
    float p = kErf[0][i];
    for (int k = 1; k <= kDegree; ++k) p = std::fma(p, u, kErf[k][i]);
    if (!inside) p = 1.0f;                          // erf(|z|)
    const float erf = std::signbit(z) ? -p : p;     // the sign bit, as the VNNI path's ternary logic
    const float h = 0.5f * x;
    return std::fma(h, erf, h);                     // 0.5 x (1 + erf(z)), one rounding
}

void generic_rows(const int8_t* values, const int32_t* cols, const int32_t* rowptr, const float* alpha,
                  const float* beta, const float* post, const QuantParams* out_q, const uint8_t* q, int64_t M,
                  int64_t K, int64_t out_stride, int64_t out_row0, int64_t n_begin, int64_t n_end, float* out,
                  uint8_t* out_u8) {
    for (int64_t n = n_begin; n < n_end; ++n) {
        const int32_t begin = rowptr[n], end = rowptr[n + 1];
        for (int64_t m = 0; m < M; ++m) {
            const uint8_t* qm = q + m * K;
            int32_t acc = 0;
            for (int32_t i = begin; i < end; ++i) acc += static_cast<int32_t>(qm[cols[i]]) * values[i];
            const float y = std::fma(alpha[n], static_cast<float>(acc), beta[n]);
            const float z = post ? generic_gelu(y) * post[n] : y;
            const int64_t at = m * out_stride + n - out_row0;
            if (out_q)
                out_u8[at] = generic_quantize_one(z, *out_q);
            else
                out[at] = z;
        }
    }
}

}  // namespace pofa
