// AVX-512 VNNI kernel of SparseFullyConnected. Compiled with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mavx512vnni (see CMakeLists.txt) and called only after vnni_supported() said yes, so the
// library still loads and runs (on the portable path) on CPUs without these instructions.
//
// Design (vectorise over tokens, not over K): for each weight row, walk the row's nonzero K-quads;
// broadcast the quad's 4 i8 weights to 16 lanes and vpdpbusd them against the 4 u8 activations of 16
// tokens, read as one aligned 64-byte load from the token-packed panel. A row keeps up to 8 such
// accumulators (128 tokens) in registers, so one quad costs one broadcast + G loads + G vpdpbusd and
// every lane of every vpdpbusd does useful work for the tokens (only the weight side is sparse).
//
// Nothing here includes a standard or OpenVINO header: see kernel.hpp for why.
#include <immintrin.h>

#include "kernel.hpp"

namespace pofa {

bool vnni_supported() {
    // __builtin_cpu_supports also checks that the OS saves the AVX-512 register state (XCR0).
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

void vnni_quantize(const float* x, int64_t K, int64_t Kq, int64_t m_begin, int64_t m_end, int64_t tile_tokens,
                   const QuantParams& qp, uint8_t* panel) {
    const __m512 scale = _mm512_set1_ps(qp.scale);
    const __m512 shift = _mm512_set1_ps(qp.shift);
    const __m512 zero = _mm512_setzero_ps();
    const __m512 qmax = _mm512_set1_ps(qp.qmax);
    const int64_t quad_stride = tile_tokens * 4;  // bytes between the same token of consecutive quads
    for (int64_t m = m_begin; m < m_end; ++m) {
        const float* row = x + m * K;
        const int64_t t = m / tile_tokens, mt = m % tile_tokens;
        uint8_t* dst = panel + (t * Kq * tile_tokens + mt) * 4;
        for (int64_t k = 0; k < K; k += 16) {
            const int64_t left = K - k;
            // K tail: masked load (the lanes read as 0 and meet zero weights, so their value is harmless)
            const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                              : static_cast<__mmask16>((1u << left) - 1u);
            __m512 v = _mm512_maskz_loadu_ps(mask, row + k);
            // Clamp in float before the conversion: an out-of-range float converts to INT_MIN. max(v, 0)
            // returns 0 for NaN, like the portable path.
            v = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(v, scale, shift), zero), qmax);
            const __m128i q = _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(v));  // round half to even (MXCSR default)
            const int64_t kq = k / 4;
            const int64_t nq = (left >= 16 ? 16 : left + 3) / 4;
            alignas(16) int32_t quads[4];
            _mm_store_si128(reinterpret_cast<__m128i*>(quads), q);
            for (int64_t j = 0; j < nq; ++j)
                *reinterpret_cast<int32_t*>(dst + (kq + j) * quad_stride) = quads[j];
        }
    }
}

namespace {

// Accumulate the quads [q, end) of one row into G token-group accumulators. With few token groups
// the vpdpbusd chain of each accumulator would be latency-bound, so the quads are split over S
// interleaved partial sums (G * S >= 8 independent chains) that are added at the end.
template <int G, int S>
inline void row_quads(const Quad* q, const Quad* end, const uint8_t* panel, int64_t quad_stride, __m512i* acc) {
    __m512i part[S > 1 ? S - 1 : 1][G];
    if constexpr (S > 1) {
        for (int s = 0; s < S - 1; ++s)
            for (int g = 0; g < G; ++g) part[s][g] = _mm512_setzero_si512();
    }
    // Main loop: S quads per iteration, one into each set of accumulators.
    for (; q + S <= end; q += S) {
        for (int s = 0; s < S; ++s) {
            const __m512i w = _mm512_set1_epi32(q[s].w4);
            const uint8_t* p = panel + static_cast<int64_t>(q[s].kq) * quad_stride;
            for (int g = 0; g < G; ++g) {
                const __m512i a = _mm512_load_si512(reinterpret_cast<const void*>(p + 64 * g));
                if (s == 0)
                    acc[g] = _mm512_dpbusd_epi32(acc[g], a, w);
                else
                    part[s - 1][g] = _mm512_dpbusd_epi32(part[s - 1][g], a, w);
            }
        }
    }
    for (; q < end; ++q) {
        const __m512i w = _mm512_set1_epi32(q->w4);
        const uint8_t* p = panel + static_cast<int64_t>(q->kq) * quad_stride;
        for (int g = 0; g < G; ++g)
            acc[g] = _mm512_dpbusd_epi32(acc[g], _mm512_load_si512(reinterpret_cast<const void*>(p + 64 * g)), w);
    }
    if constexpr (S > 1) {
        for (int s = 0; s < S - 1; ++s)
            for (int g = 0; g < G; ++g) acc[g] = _mm512_add_epi32(acc[g], part[s][g]);
    }
}

template <int G>
void accumulate(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int32_t* accbuf) {
    constexpr int S = G >= 8 ? 1 : (G >= 4 ? 2 : (G >= 2 ? 4 : 8));
    const int64_t quad_stride = tile_tokens * 4;
    for (int64_t kb = 0; kb < w.n_kblocks; ++kb) {
        const uint32_t* seg = w.seg + (rb * w.n_kblocks + kb) * kRowBlock;
        for (int64_t r = 0; r < kRowBlock; ++r) {
            int32_t* out = accbuf + r * tile_tokens;
            __m512i acc[G];
            // First K block starts from zero; later ones continue the row's sums kept in L1 scratch.
            for (int g = 0; g < G; ++g)
                acc[g] = kb == 0 ? _mm512_setzero_si512()
                                 : _mm512_load_si512(reinterpret_cast<const void*>(out + 16 * g));
            row_quads<G, S>(w.quads + seg[r], w.quads + seg[r + 1], tile_panel, quad_stride, acc);
            for (int g = 0; g < G; ++g) _mm512_store_si512(reinterpret_cast<void*>(out + 16 * g), acc[g]);
        }
    }
}

}  // namespace

void vnni_row_block(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int64_t groups,
                    int64_t tokens, int64_t m0, int32_t* acc, float* out) {
    switch (groups) {
    case 1: accumulate<1>(w, rb, tile_panel, tile_tokens, acc); break;
    case 2: accumulate<2>(w, rb, tile_panel, tile_tokens, acc); break;
    case 3: accumulate<3>(w, rb, tile_panel, tile_tokens, acc); break;
    case 4: accumulate<4>(w, rb, tile_panel, tile_tokens, acc); break;
    case 5: accumulate<5>(w, rb, tile_panel, tile_tokens, acc); break;
    case 6: accumulate<6>(w, rb, tile_panel, tile_tokens, acc); break;
    case 7: accumulate<7>(w, rb, tile_panel, tile_tokens, acc); break;
    default: accumulate<8>(w, rb, tile_panel, tile_tokens, acc); break;
    }
    // Epilogue: acc is [row][token]; out is [token][row]. Per token, gather 16 rows' sums (one L1-resident
    // gather), dequantise them all at once (out = alpha[n] * acc + beta[n]) and store 16 contiguous
    // outputs, masked at the N tail.
    const __m512i row_index = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                 _mm512_set1_epi32(static_cast<int32_t>(tile_tokens)));
    for (int64_t r0 = 0; r0 < kRowBlock; r0 += 16) {
        const int64_t n0 = rb * kRowBlock + r0;
        if (n0 >= w.N) break;
        const int64_t left = w.N - n0;
        const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
        const __m512 alpha = _mm512_maskz_loadu_ps(mask, w.alpha + n0);
        const __m512 beta = _mm512_maskz_loadu_ps(mask, w.beta + n0);
        const int32_t* base = acc + r0 * tile_tokens;
        for (int64_t m = 0; m < tokens; ++m) {
            const __m512i idx = _mm512_add_epi32(row_index, _mm512_set1_epi32(static_cast<int32_t>(m)));
            const __m512i sums = _mm512_i32gather_epi32(idx, base, 4);
            const __m512 y = _mm512_fmadd_ps(alpha, _mm512_cvtepi32_ps(sums), beta);
            _mm512_mask_storeu_ps(out + (m0 + m) * w.N + n0, mask, y);
        }
    }
}

}  // namespace pofa
