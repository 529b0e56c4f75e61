// AVX-512 VNNI kernel of SparseFullyConnected. Compiled with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mavx512vnni (see CMakeLists.txt) and called only after vnni_supported() said yes, so the
// library still loads and runs (on the portable path) on CPUs without these instructions.
//
// Design (vectorise over tokens, not over K): for each weight row, walk the row's records, each four
// nonzeros at arbitrary K positions (kernel.hpp: why); broadcast the record's 4 i8 weights to 16 lanes,
// build the lanes of 16 tokens from the 4 positions' activation chunks (4 aligned 64-byte loads per 64
// tokens, vpunpck{l,h}bw then vpunpck{l,h}wd) and vpdpbusd the weights against each 16 tokens. A row
// keeps up to 8 accumulators (128 tokens) in registers, so a record costs one broadcast + 4C loads + 8C
// interleaves + 4C vpdpbusd for C chunks of 64 tokens.
//
// Nothing here includes a standard or OpenVINO header: see kernel.hpp for why.
#include <immintrin.h>

#include "kernel.hpp"

namespace pofa {

namespace {

// 4x4 transpose of 128-bit lanes: out[l] = [v[0].lane l, v[1].lane l, v[2].lane l, v[3].lane l].
inline void transpose_lanes(const __m512i v[4], __m512i out[4]) {
    const __m512i s0 = _mm512_shuffle_i32x4(v[0], v[1], 0x44), s1 = _mm512_shuffle_i32x4(v[0], v[1], 0xEE);
    const __m512i s2 = _mm512_shuffle_i32x4(v[2], v[3], 0x44), s3 = _mm512_shuffle_i32x4(v[2], v[3], 0xEE);
    out[0] = _mm512_shuffle_i32x4(s0, s2, 0x88);
    out[1] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
    out[2] = _mm512_shuffle_i32x4(s1, s3, 0x88);
    out[3] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
}

// 16 lanes of generic_gelu (kernel_generic.cpp): the same operations in the same order. The table's
// rows are 16 floats each, one register per coefficient; vpermps picks each lane's interval (it reads
// only an index's low 4 bits). Cheap steps, since this runs once per output of a fused FFN (about 4% of
// a sparse DistilBERT before they were used):
// * floor(|z| * 4) as one fma rounded down: |z| * 4 + 2^23 rounded toward -inf is 2^23 + floor(|z| * 4)
//   (exact: ulp 1 there), whose low mantissa bits are the index and which less 2^23 is the float floor
//   (the same value as the portable path's truncation; lanes outside [0, 4) get erf = 1 anyway);
// * the sign as one ternary-logic op: erf(z) = erf(|z|) with z's sign bit;
// * 0.5 x (1 + erf) as one fma, h + h * erf with h = 0.5 x (one rounding).
inline __m512 gelu16(__m512 x) {
    using namespace gelu;
    const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(kInvSqrt2));
    const __m512 az = _mm512_abs_ps(z);
    const __mmask16 inside = _mm512_cmp_ps_mask(az, _mm512_set1_ps(kZEnd), _CMP_LT_OQ);  // false for NaN
    const __m512 t = _mm512_fmadd_round_ps(az, _mm512_set1_ps(kPerUnit), _mm512_set1_ps(kTwo23),
                                           _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512i i = _mm512_castps_si512(t);
    const __m512 u = _mm512_fnmadd_ps(_mm512_sub_ps(t, _mm512_set1_ps(kTwo23)), _mm512_set1_ps(kWidth), az);
    __m512 p = _mm512_permutexvar_ps(i, _mm512_loadu_ps(kErf[0]));
    for (int k = 1; k <= kDegree; ++k) p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(i, _mm512_loadu_ps(kErf[k])));
    p = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), inside, p);  // erf(|z|)
    // p ^ (z & sign bit): erf(z)
    const __m512 erf = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(p), _mm512_castps_si512(z), _mm512_set1_epi32(static_cast<int>(0x80000000u)), 0x78));
    const __m512 h = _mm512_mul_ps(_mm512_set1_ps(0.5f), x);
    return _mm512_fmadd_ps(h, erf, h);
}

}  // namespace

namespace {

// 16 floats -> 16 codes in int32 lanes: the FakeQuantize as the CPU plugin computes it (see QuantParams).
inline __m512i quantize_lanes(__m512 v, const QuantParams& qp) {
    // Clamp in float before the conversion (an out-of-range float converts to INT_MIN); max(v, 0)
    // returns 0 for NaN, like the portable path.
    v = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(qp.scale), _mm512_set1_ps(qp.shift)),
                                    _mm512_setzero_ps()),
                      _mm512_set1_ps(qp.qmax));
    return _mm512_cvtps_epi32(v);  // round half to even (MXCSR default)
}

// The same as 16 bytes.
inline __m128i quantize16(__m512 v, const QuantParams& qp) {
    return _mm512_cvtusepi32_epi8(quantize_lanes(v, qp));
}

// quantize_lanes for int32 lanes that then go through vpackusdw and vpackuswb (signed to unsigned
// saturation): the packs clamp below 0, so only the upper clamp is done in float. The codes are the same:
// a negative value converts to a negative int32 (or INT_MIN when huge) and packs to 0; NaN converts to
// INT_MIN and packs to 0 (min with NaN as its second operand returns the NaN); qmax <= 255 (levels <=
// 256, checked by the op) so what the upper clamp lets through survives both packs.
inline __m512i quantize_lanes_for_packs(__m512 v, const QuantParams& qp) {
    const __m512 y = _mm512_fmadd_ps(v, _mm512_set1_ps(qp.scale), _mm512_set1_ps(qp.shift));
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_set1_ps(qp.qmax), y));
}

// The panel packing of vnni_quantize and vnni_pack_u8. quads(tok, k, mask, n) gives, for the n (1 to 4)
// tokens tok .. tok + n - 1 and the K positions k .. k + 15 that `mask` selects, one vector whose 128-bit
// lane l holds K-quad l of the 4 tokens: dword i = token tok + i's codes of K 4l .. 4l + 3 (0 past n).
template <class Quads>
void pack_panel(int64_t M, int64_t K, const PackRange& r, int64_t tile_tokens, uint8_t* panel, const Quads& quads) {
    // Per 128-bit lane, 4 tokens x 4 K token-major (byte 4d + b: token d, K b) to K-major (byte 4b + d).
    const __m512i k_major = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    for (int64_t c = r.c_begin; c < r.c_end; ++c) {
        const int64_t m = c * kChunk;
        const int64_t t = m / tile_tokens, mt = m % tile_tokens;
        uint8_t* dst = panel + t * K * tile_tokens + mt;
        const int64_t valid = M - m < kChunk ? M - m : kChunk;  // tokens past M read as zeros
        for (int64_t k = r.k_begin; k < r.k_end; k += 16) {
            const int64_t left = r.k_end - k;
            // K tail: masked load (the lanes read as 0 and are not stored)
            const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                              : static_cast<__mmask16>((1u << left) - 1u);
            // group g (tokens 16g .. 16g + 15): part[g][j], lane L, dword b = K position 4j + b of tokens
            // 16g + 4L .. 16g + 4L + 3 (one byte each)
            __m512i part[4][4];
            // by_token[a]: tokens 16g + 4a .. 16g + 4a + 3, lane l = their K-quad l (see quads)
            auto regroup = [&](int g, const __m512i by_token[4]) {
                __m512i q4[4];  // q4[j], dword i: token 16g + i's K-quad j (tokens in order)
                transpose_lanes(by_token, q4);
                for (int j = 0; j < 4; ++j) part[g][j] = _mm512_shuffle_epi8(q4[j], k_major);
            };
            if (valid == kChunk) {
                // A full chunk as straight-line code. With the per-token checks of a short chunk in the
                // loop, GCC 12 neither unrolls it nor keeps part[][] in registers: 1.25x more time for the
                // whole packing (standalone loop, 64 tokens x 768 K, 2-core AVX-512 EPYC).
#pragma GCC unroll 4
                for (int g = 0; g < 4; ++g) {
                    __m512i by_token[4];
#pragma GCC unroll 4
                    for (int a = 0; a < 4; ++a) by_token[a] = quads(m + 16 * g + 4 * a, k, mask, 4);
                    regroup(g, by_token);
                }
            } else {
                for (int g = 0; g < 4; ++g) {
                    __m512i by_token[4];
                    for (int a = 0; a < 4; ++a) {
                        const int64_t n = valid - (16 * g + 4 * a);
                        by_token[a] = n <= 0 ? _mm512_setzero_si512() : quads(m + 16 * g + 4 * a, k, mask, n < 4 ? n : 4);
                    }
                    regroup(g, by_token);
                }
            }
            // The chunk of K position 4j + b holds, in lane L, dword g = part[g][j] lane L dword b (token
            // 16g + 4L + d at byte 16L + 4g + d): a 4 x 4 dword transpose within each lane.
            for (int j = 0; j < 4; ++j) {
                const __m512i t0 = _mm512_unpacklo_epi32(part[0][j], part[1][j]);
                const __m512i t1 = _mm512_unpackhi_epi32(part[0][j], part[1][j]);
                const __m512i t2 = _mm512_unpacklo_epi32(part[2][j], part[3][j]);
                const __m512i t3 = _mm512_unpackhi_epi32(part[2][j], part[3][j]);
                const __m512i chunk[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                                          _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
                for (int b = 0; b < 4; ++b)
                    if (4 * j + b < left)
                        _mm512_store_si512(reinterpret_cast<void*>(dst + (k + 4 * j + b) * tile_tokens), chunk[b]);
            }
        }
    }
}

}  // namespace

void vnni_quantize(const float* x, int64_t M, int64_t K, const PackRange& r, int64_t tile_tokens, const QuantParams& qp,
                   uint8_t* panel) {
    auto quads = [&](int64_t tok, int64_t k, __mmask16 mask, int64_t n) {
        // The 4 tokens' codes as int32, then vpackusdw of tokens (0, 1) and of (2, 3), which puts in each
        // 128-bit lane l the words of K 4l .. 4l + 3 of both tokens, and vpackuswb of those two, the bytes
        // of tokens 0, 1, 2, 3: the lane layout wanted, in 3 shuffles. (It was 4 vpmovusdb, 3
        // vinserti32x4 and a vpermd: with the straight-line full chunk, 1.6-1.7x less time for the
        // packing of 64 tokens x 768 K in a standalone loop, bit-identical panels.)
        // The prefetch: each step reads one line from each of 64 rows (64 streams, more than the
        // hardware prefetchers follow), so ask for each row's line two steps ahead. 3072 x 768 at 128
        // tokens: 12% less packing time, 4 us less per call (benchmarks/README.md, "Session 15").
        __m512i v[4];
        for (int i = 0; i < 4; ++i) {
            if (i < n) _mm_prefetch(reinterpret_cast<const char*>(x + (tok + i) * K + k + 32), _MM_HINT_T0);
            v[i] = i < n ? quantize_lanes_for_packs(_mm512_maskz_loadu_ps(mask, x + (tok + i) * K + k), qp)
                         : _mm512_setzero_si512();
        }
        return _mm512_packus_epi16(_mm512_packus_epi32(v[0], v[1]), _mm512_packus_epi32(v[2], v[3]));
    };
    // Why a head step: when the input is not 64-byte aligned (a numpy array or a plugin tensor may start
    // 16 or 32 bytes into a line) and K is a multiple of 16, every row is misaligned alike, so every
    // 16-float load of the 64 rows spans two cache lines: 3072 x 768 at 128 tokens packed in 73 us
    // (summed over both threads) instead of 38. The positions up to the rows' first line boundary go
    // first, as a short step (the K tail's masked path), and every later load is aligned.
    const uintptr_t addr = reinterpret_cast<uintptr_t>(x + r.k_begin);
    int64_t head = K % 16 == 0 && addr % 4 == 0 ? static_cast<int64_t>((64 - addr % 64) % 64 / 4) : 0;
    head = head < r.k_end - r.k_begin ? head : r.k_end - r.k_begin;
    if (head > 0) pack_panel(M, K, PackRange{r.c_begin, r.c_end, r.k_begin, r.k_begin + head}, tile_tokens, panel, quads);
    pack_panel(M, K, PackRange{r.c_begin, r.c_end, r.k_begin + head, r.k_end}, tile_tokens, panel, quads);
}

void vnni_pack_u8(const uint8_t* x, int64_t M, int64_t K, const PackRange& r, int64_t tile_tokens, uint8_t* panel) {
    // The 4 tokens' 16 codes as [t0 | t1 | t2 | t3] (one 128-bit lane each), then K-quad l of the 4
    // tokens gathered into lane l.
    const __m512i by_quad = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    pack_panel(M, K, r, tile_tokens, panel, [&](int64_t tok, int64_t k, __mmask16 mask, int64_t n) {
        auto codes = [&](int64_t i) {
            return i < n ? _mm_maskz_loadu_epi8(mask, x + (tok + i) * K + k) : _mm_setzero_si128();
        };
        __m512i packed = _mm512_castsi128_si512(codes(0));
        packed = _mm512_inserti32x4(packed, codes(1), 1);
        packed = _mm512_inserti32x4(packed, codes(2), 2);
        packed = _mm512_inserti32x4(packed, codes(3), 3);
        return _mm512_permutexvar_epi32(by_quad, packed);
    });
}

namespace {

// Records over C chunks of 64 tokens, G 16-token groups of each (4; or 1 or 2 in a tile of at most 16
// or 32 tokens, where the other groups would be all padding): acc[G * c + j] holds tokens 64c + 16j ..
// 64c + 16j + 15. With few accumulators the vpdpbusd chains would be latency-bound, so the records are
// split over S interleaved partial sums (C * G * S >= 8 independent chains).
// Stride: the panel's bytes per K position (tile_tokens) when known at compile time (a full tile of C
// chunks: shifts instead of multiplies, ~1% end to end), else 0 and k_stride_rt.
template <int C, int G, int S, int Stride>
inline void records(const QuadRecord* rec, int64_t n, const uint8_t* panel, int64_t k_stride_rt, __m512i* acc) {
    const int64_t k_stride = Stride ? Stride : k_stride_rt;
    static_assert(G == 1 || G == 2 || G == 4, "1, 2 or 4 groups of a chunk");
    constexpr int A = C * G;
    __m512i part[S][A];
    for (int s = 0; s < S; ++s)
        for (int g = 0; g < A; ++g) part[s][g] = s == 0 ? acc[g] : _mm512_setzero_si512();
    auto step = [&](const QuadRecord& q, __m512i* sums) {
        const __m512i w = _mm512_set1_epi32(q.w4);
        // The 4 positions with one 64-bit load, split with shifts: the load ports, not the ALUs, are
        // what this loop runs out of (4 16-bit loads: 1.07x more time at 128 tokens, 1.14-1.17x at 16,
        // in a standalone loop). The empty asm stops GCC from narrowing it back into 4 loads.
        uint64_t ks;
        __builtin_memcpy(&ks, q.k, sizeof(ks));
        asm("" : "+r"(ks));
        const uint8_t* pa = panel + static_cast<int64_t>(ks & 0xFFFF) * k_stride;
        const uint8_t* pb = panel + static_cast<int64_t>((ks >> 16) & 0xFFFF) * k_stride;
        const uint8_t* pc = panel + static_cast<int64_t>((ks >> 32) & 0xFFFF) * k_stride;
        const uint8_t* pd = panel + static_cast<int64_t>(ks >> 48) * k_stride;
        for (int c = 0; c < C; ++c) {
            __m512i a = _mm512_load_si512(reinterpret_cast<const void*>(pa + 64 * c));
            __m512i b = _mm512_load_si512(reinterpret_cast<const void*>(pb + 64 * c));
            __m512i x = _mm512_load_si512(reinterpret_cast<const void*>(pc + 64 * c));
            __m512i y = _mm512_load_si512(reinterpret_cast<const void*>(pd + 64 * c));
            // Keep the 4 loads in registers. Without this, GCC 12 folds each load into both of its
            // interleaves (vpunpck{l,h}bw with a memory operand), so a record of 2 chunks issues 12
            // 64-byte loads instead of 8, and the loads, not the vpdpbusd, set the pace: 1.18-1.22x
            // more time in a standalone loop over one layer at 128 tokens (benchmarks/README.md,
            // "Session 11").
            asm("" : "+v"(a), "+v"(b), "+v"(x), "+v"(y));
            const __m512i ab = _mm512_unpacklo_epi8(a, b), xy = _mm512_unpacklo_epi8(x, y);
            sums[G * c] = _mm512_dpbusd_epi32(sums[G * c], _mm512_unpacklo_epi16(ab, xy), w);
            if constexpr (G > 1)
                sums[G * c + 1] = _mm512_dpbusd_epi32(sums[G * c + 1], _mm512_unpackhi_epi16(ab, xy), w);
            if constexpr (G > 2) {
                const __m512i ab2 = _mm512_unpackhi_epi8(a, b), xy2 = _mm512_unpackhi_epi8(x, y);
                sums[G * c + 2] = _mm512_dpbusd_epi32(sums[G * c + 2], _mm512_unpacklo_epi16(ab2, xy2), w);
                sums[G * c + 3] = _mm512_dpbusd_epi32(sums[G * c + 3], _mm512_unpackhi_epi16(ab2, xy2), w);
            }
        }
    };
    int64_t i = 0;
    for (; i + S <= n; i += S)
        for (int s = 0; s < S; ++s) step(rec[i + s], part[s]);
    for (; i < n; ++i) step(rec[i], part[0]);
    for (int g = 0; g < A; ++g) {
        acc[g] = part[0][g];
        for (int s = 1; s < S; ++s) acc[g] = _mm512_add_epi32(acc[g], part[s][g]);
    }
}

// The row block's sums for C chunks of G groups each (C * G accumulators per row).
template <int C, int G>
void accumulate(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int32_t* accbuf) {
    constexpr int A = C * G;
    constexpr int S = A >= 8 ? 1 : (A >= 4 ? 2 : (A >= 2 ? 4 : 8));  // A * S >= 8 chains
    for (int64_t kb = 0; kb < w.n_kblocks; ++kb) {
        const int64_t s0 = (rb * w.n_kblocks + kb) * kRowBlock;
        const uint8_t* block_panel = tile_panel + kb * kKBlock * tile_tokens;  // records count from here
        for (int64_t r = 0; r < kRowBlock; ++r) {
            const int64_t s = s0 + r;
            int32_t* out = accbuf + r * tile_tokens;
            __m512i acc[A];
            // First K block starts from zero; later ones continue the row's sums kept in scratch.
            for (int g = 0; g < A; ++g)
                acc[g] = kb == 0 ? _mm512_setzero_si512() : _mm512_load_si512(reinterpret_cast<const void*>(out + 16 * g));
            const QuadRecord* rec = w.records + w.seg[s];
            const int64_t n = static_cast<int64_t>(w.seg[s + 1] - w.seg[s]);
            if (tile_tokens == kChunk * C)
                records<C, G, S, kChunk * C>(rec, n, block_panel, tile_tokens, acc);
            else  // the last tile of a long M, shorter than the others
                records<C, G, S, 0>(rec, n, block_panel, tile_tokens, acc);
            for (int g = 0; g < A; ++g) _mm512_store_si512(reinterpret_cast<void*>(out + 16 * g), acc[g]);
        }
    }
}

}  // namespace

void vnni_row_block(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int64_t groups,
                    int64_t tokens, int64_t m0, int32_t* acc, const BlockOut& dst, float* stage) {
    vnni_accumulate(w, rb, tile_panel, tile_tokens, groups, acc);
    vnni_store(w, tile_tokens, groups, tokens, m0, acc, dst, stage);
}

void vnni_accumulate(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int64_t groups,
                     int32_t* acc) {
    if (groups > 4)  // two chunks (a short second chunk still computes its 4 groups)
        accumulate<2, 4>(w, rb, tile_panel, tile_tokens, acc);
    else if (groups > 2)
        accumulate<1, 4>(w, rb, tile_panel, tile_tokens, acc);
    else if (groups == 2)
        accumulate<1, 2>(w, rb, tile_panel, tile_tokens, acc);
    else
        accumulate<1, 1>(w, rb, tile_panel, tile_tokens, acc);
}

namespace {

// The panel hand-off's epilogue (kernel.hpp): the sums are [row][token], 16 tokens per vector, so a
// row's 4 vectors of a 64-token chunk are the consumer's chunk of K position n. Per element the same
// fma, GELU and post as the row-major epilogue, then quantize_lanes_for_packs, whose codes equal
// quantize16's (the packs' saturation does its lower clamp), so the codes are the same bits; vpackusdw
// then vpackuswb of the 4 vectors' int32 codes place each token where the consumer's interleave
// expects it (chunk_place).
void store_panel(const PackedView& w, int64_t tile_tokens, int64_t groups, const int32_t* acc, const BlockOut& dst) {
    const QuantParams& qp = *w.out_q;  // a panel is always u8 codes
    const int64_t chunks = (groups + 3) / 4;
    for (int64_t r = 0; r < dst.cols; ++r) {
        const int64_t n = dst.row0 + r;
        const int32_t* row = acc + r * tile_tokens;
        const __m512 alpha = _mm512_set1_ps(w.alpha[n]), beta = _mm512_set1_ps(w.beta[n]);
        const __m512 post = _mm512_set1_ps(w.post ? w.post[n] : 1.0f);
        auto codes = [&](int64_t g) {  // the groups past `groups` (padding tokens): zero codes
            if (g >= groups) return _mm512_setzero_si512();
            const __m512i sums = _mm512_load_si512(reinterpret_cast<const void*>(row + 16 * g));
            __m512 y = _mm512_fmadd_ps(alpha, _mm512_cvtepi32_ps(sums), beta);
            if (w.post) y = _mm512_mul_ps(gelu16(y), post);
            return quantize_lanes_for_packs(y, qp);  // vpackusdw and vpackuswb follow
        };
        uint8_t* chunk = dst.panel + n * tile_tokens;  // K position n of the consumer, this tile
        for (int64_t c = 0; c < chunks; ++c) {
            const __m512i lo = _mm512_packus_epi32(codes(4 * c), codes(4 * c + 1));
            const __m512i hi = _mm512_packus_epi32(codes(4 * c + 2), codes(4 * c + 3));
            _mm512_store_si512(reinterpret_cast<void*>(chunk + 64 * c), _mm512_packus_epi16(lo, hi));
        }
    }
}

}  // namespace

void vnni_store(const PackedView& w, int64_t tile_tokens, int64_t groups, int64_t tokens, int64_t m0,
                const int32_t* acc, const BlockOut& dst, float* stage) {
    if (dst.panel) {
        store_panel(w, tile_tokens, groups, acc, dst);
        return;
    }
    // Epilogue: acc is [row][token], out is [token][row]. Per 16 tokens:
    // for each 16 rows, dequantise
    // (y = alpha[n] * acc + beta[n]) and transpose the 16x16 block in registers (64 shuffles) into a
    // small [token][row] staging tile; then copy each token's kRowBlock outputs to out as one
    // contiguous run. Why the staging tile: with N a multiple of 1024 (768 x 4 bytes is not, but
    // 3072 x 4 is), the tokens' output rows are a multiple of 4 KiB apart, so writing 16 outputs per
    // token straight from the transpose sends every store of a burst to the same L1 set, and the
    // stores' cache misses serialise (measured: 3-4x slower epilogue). Long per-token runs spread the
    // stores over kRowBlock / 16 sets.
    const int64_t cols = dst.cols;
    // Where the tokens' output rows are not a multiple of 4 KiB apart (N = 768: 3 KiB), plain f32 output
    // goes from the transpose straight to the output, 16 floats (one 64-byte store) per token and 16
    // rows: the staging copy is the part of the epilogue it skips (768 x 768 at 128 tokens: 1.1-1.8 us,
    // 3-4% less time per call, benchmarks/README.md, "Session 12"). A group of fewer than 16
    // valid tokens, a short row block, a fused GELU or u8 codes still go through the staging tile.
    const bool direct = !w.post && !w.out_q && cols % 16 == 0 && (dst.stride * 4) % 4096 != 0;
    for (int64_t g = 0; g < groups; ++g) {
        const bool direct_g = direct && tokens - 16 * g >= 16;
        for (int64_t r0 = 0; r0 < cols; r0 += 16) {
            const int64_t n0 = dst.row0 + r0;
            __m512 r[16];
            for (int i = 0; i < 16; ++i) {
                const int32_t* row = acc + (r0 + i) * tile_tokens;
                const __m512i sums = _mm512_load_si512(reinterpret_cast<const void*>(row + 16 * g));
                r[i] = _mm512_fmadd_ps(_mm512_set1_ps(w.alpha[n0 + i]), _mm512_cvtepi32_ps(sums),
                                       _mm512_set1_ps(w.beta[n0 + i]));
            }
            __m512 a[16], b[16];
            for (int i = 0; i < 8; ++i) {
                a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            for (int i = 0; i < 4; ++i) {  // b[4i + c], lane l: rows 4i..4i+3 of token 4l + c
                const __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
                const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
                b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
                b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
                b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
                b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
            }
            for (int c = 0; c < 4; ++c) {
                const __m512i v[4] = {_mm512_castps_si512(b[c]), _mm512_castps_si512(b[4 + c]),
                                      _mm512_castps_si512(b[8 + c]), _mm512_castps_si512(b[12 + c])};
                __m512i t[4];
                transpose_lanes(v, t);  // t[l] = the 16 rows of token 4l + c
                for (int l = 0; l < 4; ++l) {
                    if (direct_g)
                        _mm512_storeu_ps(dst.f32 + (m0 + 16 * g + 4 * l + c) * dst.stride + r0, _mm512_castsi512_ps(t[l]));
                    else
                        _mm512_store_si512(reinterpret_cast<void*>(stage + (4 * l + c) * kStageStride + r0), t[l]);
                }
            }
        }
        if (direct_g) continue;
        const int64_t tok0 = m0 + 16 * g;
        const int64_t valid = tokens - 16 * g < 16 ? tokens - 16 * g : 16;
        const int64_t full = cols / 16 * 16;
        const __mmask16 tail = static_cast<__mmask16>((1u << (cols - full)) - 1u);
        if (w.post) {  // fused GELU, here where a token's rows are contiguous: post is one vector load
            const float* post = w.post + dst.row0;
            for (int64_t tok = 0; tok < valid; ++tok) {
                const float* src = stage + tok * kStageStride;
                float* out = w.out_q ? nullptr : dst.f32 + (tok0 + tok) * dst.stride;
                uint8_t* out8 = w.out_q ? dst.u8 + (tok0 + tok) * dst.stride : nullptr;
                for (int64_t j = 0; j < cols; j += 16) {
                    const __m512 y = _mm512_mul_ps(gelu16(_mm512_load_ps(src + j)), _mm512_loadu_ps(post + j));
                    const __mmask16 m16 = j < full ? static_cast<__mmask16>(0xFFFF) : tail;
                    if (out8)
                        _mm_mask_storeu_epi8(out8 + j, m16, quantize16(y, *w.out_q));
                    else if (j < full)
                        _mm512_storeu_ps(out + j, y);
                    else
                        _mm512_mask_storeu_ps(out + j, tail, y);
                }
            }
            continue;
        }
        if (w.out_q) {  // u8 hand-off without a GELU
            for (int64_t tok = 0; tok < valid; ++tok) {
                const float* src = stage + tok * kStageStride;
                uint8_t* out8 = dst.u8 + (tok0 + tok) * dst.stride;
                for (int64_t j = 0; j < cols; j += 16)
                    _mm_mask_storeu_epi8(out8 + j, j < full ? static_cast<__mmask16>(0xFFFF) : tail,
                                         quantize16(_mm512_load_ps(src + j), *w.out_q));
            }
            continue;
        }
        for (int64_t tok = 0; tok < valid; ++tok) {
            const float* src = stage + tok * kStageStride;
            float* out = dst.f32 + (tok0 + tok) * dst.stride;
            for (int64_t j = 0; j < full; j += 16) _mm512_storeu_ps(out + j, _mm512_load_ps(src + j));
            // a masked store only at the N tail: masked stores are slower than plain ones on AMD
            if (tail) _mm512_mask_storeu_ps(out + full, tail, _mm512_load_ps(src + full));
        }
    }
}

}  // namespace pofa
