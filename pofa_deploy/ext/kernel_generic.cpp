// Portable kernel of SparseFullyConnected: plain C++, compiled without any ISA flag, so the extension
// runs (correctly, slowly) on any CPU OpenVINO runs on. It is also the reference the VNNI path is
// tested against: same quantisation arithmetic, same int32 sums, same final fma.
#include <cmath>
#include <cstring>

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

float generic_gelu(float x) {
    using namespace gelu;
    const float z = x * kInvSqrt2;
    const float az = std::fabs(z);
    const float t = 1.0f / std::fma(kP, az, 1.0f);
    float z2 = az * az;
    z2 = z2 < kMaxZ2 ? z2 : kMaxZ2;
    // exp(-z2) = 2^n * p(r), r = -z2 - n ln 2 (two-step ln 2 keeps r exact enough)
    const float v = -z2;
    const float n = std::nearbyint(v * kLog2e);
    float r = std::fma(n, -kLn2Hi, v);
    r = std::fma(n, -kLn2Lo, r);
    float p = std::fma(kE0, r, kE1);
    p = std::fma(p, r, kE2);
    p = std::fma(p, r, kE3);
    p = std::fma(p, r, kE4);
    p = std::fma(p, r, kE5);
    p = std::fma(p, r * r, r + 1.0f);
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float two_n;
    std::memcpy(&two_n, &bits, sizeof two_n);
    const float e = p * two_n;
    float poly = std::fma(kA5, t, kA4);
    poly = std::fma(poly, t, kA3);
    poly = std::fma(poly, t, kA2);
    poly = std::fma(poly, t, kA1);
    const float erfc_abs = poly * t * e;  // erfc(|z|)
    const float one_plus_erf = z >= 0.0f ? 2.0f - erfc_abs : erfc_abs;
    return 0.5f * x * one_plus_erf;
}

void generic_rows(const int8_t* values, const int32_t* cols, const int32_t* rowptr, const float* alpha,
                  const float* beta, const float* post, const QuantParams* out_q, const uint8_t* q, int64_t M,
                  int64_t K, int64_t N, int64_t n_begin, int64_t n_end, float* out, uint8_t* out_u8) {
    for (int64_t n = n_begin; n < n_end; ++n) {
        const int32_t begin = rowptr[n], end = rowptr[n + 1];
        for (int64_t m = 0; m < M; ++m) {
            const uint8_t* qm = q + m * K;
            int32_t acc = 0;
            for (int32_t i = begin; i < end; ++i) acc += static_cast<int32_t>(qm[cols[i]]) * values[i];
            const float y = std::fma(alpha[n], static_cast<float>(acc), beta[n]);
            const float z = post ? generic_gelu(y) * post[n] : y;
            if (out_q)
                out_u8[m * N + n] = generic_quantize_one(z, *out_q);
            else
                out[m * N + n] = z;
        }
    }
}

}  // namespace pofa
