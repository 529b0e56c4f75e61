// Kernel interface shared by the op (sparse_fc.cpp), the portable kernel (kernel_generic.cpp) and
// the AVX-512 VNNI kernel (kernel_vnni.cpp).
//
// Why only plain structs and raw pointers here: kernel_vnni.cpp is compiled with -mavx512*, so any
// inline function it instantiates (std::vector, TBB, OpenVINO headers) could be emitted with AVX-512
// instructions and then picked by the linker for the *portable* code too (inline functions are merged
// across translation units), which would crash on a CPU without AVX-512. The VNNI translation unit
// therefore includes nothing but this header and <immintrin.h>, and all threading (ov::parallel_for)
// and memory management stay in the portable translation units.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pofa {

// Why records of 4 arbitrary K positions: vpdpbusd multiplies 4 u8 activations by 4 i8 weights per
// int32 lane. With 16 tokens' activations of 4 *consecutive* K positions per lane (an aligned K-quad, the
// first design), a quad a row uses at 90% unstructured zeros holds 1.16 nonzeros: 71% of the multiplies
// are by zero. Two arbitrary nonempty K-pairs (session 9) hold 2.06. Four arbitrary nonzeros of the row
// hold 4 (only a row's last record in a K block may hold fewer): every multiply is useful. The
// activations are packed per K position (1 byte per token; a 64-byte chunk is 64 tokens), and the kernel
// builds the lanes for 16 tokens from the record's 4 chunks with a two-level interleave: vpunpck{l,h}bw
// of chunks (a, b) and of (c, d), then vpunpck{l,h}wd of those. 4 loads and 8 interleaves give 4 vectors
// of 16 tokens. Measured on a 2-core AVX-512 EPYC (Zen 5), a standalone single-thread loop over one
// layer at 128 tokens and 90% zeros: 1.37-1.46x less time than pair records (768 x 3072, 3072 x 768,
// 1024 x 4096): 2.2-2.6 vpdpbusd/ns against 3.0-3.3, with 1.84x fewer vpdpbusd (benchmarks/README.md,
// "Session 10").
//
// One record of a row: K positions k[0..3], counted from the start of the record's K block (so 16 bits
// hold them for any K: 12 bytes per record, 40% less packed weight memory than int32 positions), and
// their 4 i8 weights, little-endian in that order. A row's last record in a K block repeats its first
// position with zero weights where fewer than 4 are left.
struct QuadRecord {
    uint16_t k[4];  // read as one 64-bit load (kernel_vnni.cpp)
    int32_t w4;
};
static_assert(sizeof(QuadRecord) == 12, "12 bytes per record");

// Activation quantisation, the FakeQuantize the op replaces, in the form the CPU plugin computes it:
// q = round_half_even(clamp(x * scale + shift, 0, levels - 1)).
struct QuantParams {
    float scale;  // (levels - 1) / (input_high - input_low)
    float shift;  // -input_low * scale
    float qmax;   // levels - 1
};

// Packed weights as the VNNI kernel reads them (built once per op instance, see sparse_fc.cpp).
//
// Rows are grouped in blocks of kRowBlock (one work item = one row block x one token tile); a block holds
// consecutive weight rows of one output (with several outputs, see out_splits in sparse_fc.hpp, each
// output's rows start a new block, so the last block of each may be short); K is split in blocks of
// kKBlock positions so that the activation panel slice of one K block stays in cache (see kKBlock) while
// every row of a row block walks over it. A row's int32 sums live in registers within a K block and in a per-thread
// scratch ([row][token]) between K blocks.
//
// Per (row block rb, K block kb, row r of the block), with s = (rb * n_kblocks + kb) * kRowBlock + r:
// records[seg[s] .. seg[s + 1]). One sequential stream per row block, no searching. (Row pairs that
// shared loads, as the K-pair kernel had, are gone: two rows rarely use the same 4 positions.)
struct PackedView {
    const QuadRecord* records;
    const uint32_t* seg;
    // Per weight row n (padded by kRowBlock past N, so a block's padding rows read harmless values):
    const float* alpha;       // weight scale * activation step
    const float* beta;        // weight scale * activation offset * row sum + bias
    const float* post;        // scale after a fused GELU, or nullptr when no GELU is fused
    const QuantParams* out_q; // u8 output: the consumer's activation quantisation; nullptr: f32 output
    int64_t n_kblocks;        // K blocks per row block in the record streams
};

constexpr int64_t kRowBlock = 128;  // rows per block (multiple of 16: the epilogue transposes 16 x 16 blocks)
constexpr int64_t kStageStride = kRowBlock + 16;  // floats; padded so the 16 staged tokens use different L1 sets
constexpr int64_t kTokenGroup = 16; // tokens per vpdpbusd (16 int32 lanes)
constexpr int64_t kChunk = 64;      // tokens per 64-byte chunk of one K position in the panel
constexpr int64_t kMaxChunks = 2;   // chunks per tile: 2 x 64 = 128 tokens, 8 accumulators per row
// K positions per K block: the activations a row block's rows walk over while their sums stay in
// registers (for a 128-token tile, 512 * 128 B = 64 KiB: L1 is 48 KiB on the EPYC measured, but a row
// touches only its 4 positions' chunks per record). Measured there, DistilBERT 1 x 128 end to end
// (benchmarks/library_ab.py, interleaved): 512 1.02x faster than 256, 128 0.89x (more sums reloaded).
constexpr int64_t kKBlock = 512;
static_assert(kKBlock <= 65536, "a record's positions are 16-bit offsets within its K block");

// Fused GELU (activation "gelu_erf"): y = gelu(alpha * sum + beta) * post[n], where post is the per-
// channel Multiply that follows the Gelu in NNCF's graph (its smooth-quant scale, or ones). Why fuse:
// OpenVINO's own FullyConnected fuses the GELU as a post-op, while after a custom op the plugin runs it
// as a separate node that reads and writes the whole [M, N] f32 output once more (about 0.09 ms per
// 128 x 3072 output on a 2-core EPYC, ~10% of a sparse DistilBERT).
//
// gelu(x) = 0.5 x (1 + erf(x / sqrt 2)), with erf(|z|) from a table of 16 polynomials of degree 5 on
// [0, 4) (intervals of 1/4; erf_table.py generates it: |error| < 6e-8, about the float32 spacing below
// 1) and erf(|z|) = 1 from 4 on; erf(z) is erf(|z|) with z's sign, and gelu(x) = h + h erf(z) with
// h = x / 2, one fma (one rounding; before session 10 it was two roundings, 1 + erf then a product). The absolute
// error is what matters downstream (the output is quantised to u8 codes, or compared with OpenVINO's
// own GELU, to ~1e-6). Why a table: one permute per coefficient picks each lane's interval (16
// intervals = the 16 lanes of a register), then 5 fma; 1.6x faster than Abramowitz & Stegun 7.1.26
// (used before: a division and an exp) on a 2-core AVX-512 EPYC. The portable and the VNNI path
// evaluate the same operations in the same order (every fma exactly rounded), so they agree bit for bit.
namespace gelu {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kZEnd = 4.0f;       // the table covers |z| < 4; erf(4) = 1 - 1.5e-8 rounds to 1
constexpr float kPerUnit = 4.0f;    // intervals per unit of |z|
constexpr float kWidth = 0.25f;     // 1 / kPerUnit
constexpr float kTwo23 = 8388608.0f;  // 2^23: a float in [2^23, 2^24) has ulp 1 (the VNNI path's floor)
constexpr int kDegree = 5;
// generated by python -m pofa_deploy.ext.erf_table (max |error| 5.95e-08)
constexpr float kErf[6][16] = {
    {1.035279930e-01f, 4.532615095e-02f, -2.703504823e-02f, -6.670918316e-02f, -6.106119603e-02f, -3.064391576e-02f, -2.303251997e-03f, 1.132802200e-02f, 1.244421210e-02f, 8.360578679e-03f, 4.236414097e-03f, 1.727707451e-03f, 5.842621322e-04f, 1.665798191e-04f, 4.045961396e-05f, 8.430466551e-06f},
    {3.473329823e-03f, 1.370849609e-01f, 1.923905909e-01f, 1.538460255e-01f, 6.649812311e-02f, -1.083057746e-02f, -4.794173315e-02f, -4.924307019e-02f, -3.418055922e-02f, -1.843130775e-02f, -8.114697412e-03f, -2.988355467e-03f, -9.333863854e-04f, -2.494553337e-04f, -5.739092376e-05f, -1.141549455e-05f},
    {-3.766311705e-01f, -3.104997277e-01f, -1.476458609e-01f, 2.641994506e-02f, 1.387420297e-01f, 1.681413949e-01f, 1.391726881e-01f, 9.029367566e-02f, 4.818367958e-02f, 2.163982205e-02f, 8.285691030e-03f, 2.726646606e-03f, 7.753649843e-04f, 1.912605658e-04f, 4.104060281e-05f, 7.677239410e-06f},
    {3.147227108e-05f, -2.649250627e-01f, -4.393229485e-01f, -4.821781218e-01f, -4.151301682e-01f, -2.956868708e-01f, -1.784196347e-01f, -9.236383438e-02f, -4.133149981e-02f, -1.606524922e-02f, -5.441987421e-03f, -1.610327745e-03f, -4.169766617e-04f, -9.460662113e-05f, -1.882726792e-05f, -3.288972948e-06f},
    {1.128378510e+00f, 1.060012460e+00f, 8.787811399e-01f, 6.429306865e-01f, 4.151079953e-01f, 2.365218848e-01f, 1.189308017e-01f, 5.277515203e-02f, 2.066693082e-02f, 7.142212708e-03f, 2.178205177e-03f, 5.862363614e-04f, 1.392365957e-04f, 2.918362588e-05f, 5.397949735e-06f, 8.810908980e-07f},
    {2.500757823e-09f, 2.763263881e-01f, 5.204998851e-01f, 7.111556530e-01f, 8.427007794e-01f, 9.229001403e-01f, 9.661051631e-01f, 9.866716862e-01f, 9.953222871e-01f, 9.985373020e-01f, 9.995930195e-01f, 9.998993874e-01f, 9.999778867e-01f, 9.999957085e-01f, 9.999992847e-01f, 9.999998808e-01f},
};
static_assert(sizeof(kErf) / sizeof(kErf[0]) == kDegree + 1, "one table row per coefficient");
static_assert(sizeof(kErf[0]) / sizeof(float) == 16 && kZEnd * kPerUnit == 16.0f,
              "16 intervals: the 16 lanes vpermps picks from");
}  // namespace gelu

// u8 hand-off (attributes output_levels > 0 on a producer, input_u8 on its consumer): when an op's
// output goes only into another op, the producer quantises in its epilogue with the consumer's
// FakeQuantize (the same f32 value, the same operations: bit-identical codes) and writes u8 [M, N]
// row-major (handoff "rows"; or "panel", already in the consumer's packed layout, see below), 4x fewer
// bytes than f32; the consumer packs those codes without quantising (or not at all). Why: moving
// f32 activations through memory is what slows down when the machine's memory is contended
// (benchmarks/README.md, "Where the slow mode goes"); OpenVINO's own FullyConnected nodes pass u8/i8.

// Panel layout for tokens: tile t (tile_tokens tokens each, a multiple of kChunk), then K position k,
// then 64-token chunk, then the token's place in its chunk (1 byte):
// panel[(t * K + k) * tile_tokens + chunk_start + chunk_place(m % 64)]. One chunk of one K position is
// one aligned 64-byte load. Within a chunk the tokens are placed so that the kernel's interleave of 4
// chunks gives 16 consecutive tokens per vector: vpunpck{l,h}bw take bytes 0-7 / 8-15 of each 128-bit
// lane of their sources, vpunpck{l,h}wd then words 0-3 / 4-7 of theirs, so vector j (tokens 16j ..
// 16j + 15; j = 0: lbw then lwd, 1: lbw, hwd, 2: hbw, lwd, 3: hbw, hwd) reads bytes 4j .. 4j + 3 of each
// lane L: token 16j + 4L + d sits at byte 16L + 4j + d. M tokens run in tiles of up to kMaxChunks
// chunks; a short M in one tile of whole chunks (the last one padded). Static (internal linkage), like
// everything here that both kernels' translation units use (see the top of this file).
static inline int64_t panel_tile_tokens(int64_t M) {
    const int64_t chunks = (M + kChunk - 1) / kChunk;
    return (chunks < kMaxChunks ? chunks : kMaxChunks) * kChunk;
}
// Tokens in the panel, padding included: n_tiles * tile_tokens.
static inline int64_t panel_tokens(int64_t M) {
    const int64_t tt = panel_tile_tokens(M);
    return tt == 0 ? 0 : (M + tt - 1) / tt * tt;
}
// Where token u (0 <= u < 64) of a chunk sits in it (see above).
static inline int64_t chunk_place(int64_t u) {
    return 16 * (u % 16 / 4) + 4 * (u / 16) + u % 4;
}
// Byte offset of token m, K position k in the panel of M tokens and K positions.
static inline int64_t panel_offset(int64_t m, int64_t k, int64_t K, int64_t tile_tokens) {
    const int64_t mt = m % tile_tokens;
    return (m / tile_tokens * K + k) * tile_tokens + mt / kChunk * kChunk + chunk_place(mt % kChunk);
}

// Panel hand-off (attribute handoff "panel" on both ops of a u8 hand-off): the producer writes its u8
// codes straight into the consumer's panel layout, as a tensor of panel_tokens(M) x N bytes (row n of
// the producer is K position n of the consumer), and the consumer runs on it without packing. Why: the
// producer's sums are per row across 16 tokens (the vpdpbusd lanes), so a row's 4 vectors of a 64-token
// chunk are one chunk of the panel: two vpackusdw and one vpackuswb (the inverse of the consumer's
// interleave) per 64-byte store, instead of the [token][row] transpose the row-major output needs; and
// the consumer's packing pass (a read and a write of its whole input) is gone. Padding (the tokens past
// M in the last chunk) holds codes that are never stored, as with the packed input.

// --- Portable kernel (kernel_generic.cpp): any CPU, straight from the CSR form of the IR ---
// Quantise tokens [m_begin, m_end) of x ([M, K]) into q ([M, K] u8), bit-identical to vnni_quantize.
void generic_quantize(const float* x, int64_t K, int64_t m_begin, int64_t m_end, const QuantParams& qp, uint8_t* q);
// One value quantised exactly as generic_quantize and vnni_quantize do (the u8 hand-off between ops).
uint8_t generic_quantize_one(float x, const QuantParams& qp);
// Weight rows [n_begin, n_end), all M tokens, into out[m * out_stride + n - out_row0] (or out_u8): row
// out_row0 is column 0 of its output. Same integer sums and the same final fma as the VNNI path, so
// both paths give identical outputs.
void generic_rows(const int8_t* values, const int32_t* cols, const int32_t* rowptr, const float* alpha,
                  const float* beta, const float* post, const QuantParams* out_q, const uint8_t* q, int64_t M,
                  int64_t K, int64_t out_stride, int64_t out_row0, int64_t n_begin, int64_t n_end, float* out,
                  uint8_t* out_u8);
// The panel hand-off on the portable path: u8 codes [M, N] row-major to the panel
// layout of M tokens, and back (the padding is written as zeros, read never).
void generic_rows_to_panel(const uint8_t* rows, int64_t M, int64_t N, uint8_t* panel);
void generic_panel_to_rows(const uint8_t* panel, int64_t M, int64_t N, uint8_t* rows);
// The fused GELU of one value (see namespace gelu), as both paths compute it.
float generic_gelu(float x);

// Does this CPU (and OS) support the VNNI kernel? (kernel_generic.cpp: safe to call anywhere)
bool vnni_supported();

// --- AVX-512 VNNI kernel (kernel_vnni.cpp); call only when vnni_supported() ---
// The part of the panel one packing call writes: the 64-token chunks [c_begin, c_end) at the K positions
// [k_begin, k_end).
struct PackRange {
    int64_t c_begin, c_end, k_begin, k_end;
};
// Quantise x ([M, K] row-major) into that part of the panel of K positions; tokens past M (in the last
// chunk) are written as zeros.
void vnni_quantize(const float* x, int64_t M, int64_t K, const PackRange& r, int64_t tile_tokens, const QuantParams& qp,
                   uint8_t* panel);
// The same packing for input that is already u8 codes ([M, K] row-major, from a producer op's u8 output).
void vnni_pack_u8(const uint8_t* x, int64_t M, int64_t K, const PackRange& r, int64_t tile_tokens, uint8_t* panel);
// Where one row block's results go: weight rows row0 .. row0 + cols - 1 become columns 0 .. cols - 1 of
// f32 (or of u8, codes, when PackedView::out_q is set), whose tokens are `stride` elements apart. The
// pointers are already offset to the block's first column of its output. With the panel hand-off,
// `panel` (else nullptr) is the start of the token tile in the consumer's panel: row n is K position n
// there (one output: its rows are the consumer's K), and u8 and f32 are unused.
struct BlockOut {
    int64_t row0, cols, stride;
    float* f32;
    uint8_t* u8;
    uint8_t* panel;
};
// One row block x one token tile: accumulate every K block into acc ([kRowBlock][tile_tokens] int32,
// 64-byte aligned scratch, row r at r * tile_tokens; the sums of the tile's `groups` 16-token groups
// rounded up to 1, 2, 4 or 8, padding tokens included) and write the tile's `tokens` valid tokens,
// starting at token m0, to dst.
// stage: 64-byte aligned scratch of 16 * kStageStride floats.
void vnni_row_block(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int64_t groups,
                    int64_t tokens, int64_t m0, int32_t* acc, const BlockOut& dst, float* stage);
// The two halves of vnni_row_block, the int32 sums, then dequantise + store (separate for profiling:
// benchmarks/kernel_loop.cpp times them apart).
void vnni_accumulate(const PackedView& w, int64_t rb, const uint8_t* tile_panel, int64_t tile_tokens, int64_t groups,
                     int32_t* acc);
void vnni_store(const PackedView& w, int64_t tile_tokens, int64_t groups, int64_t tokens, int64_t m0,
                const int32_t* acc, const BlockOut& dst, float* stage);

}  // namespace pofa
