// Standalone single-thread loops over the VNNI kernel's phases (kernel_loop.py compiles and runs this;
// not part of the library). Why: inside OpenVINO a layer's time mixes the kernel with the plugin's call,
// the two thread hand-offs and the other thread; here each phase runs alone, on random records with the
// statistics of an unstructured-sparse layer, so its rate can be set against what the core can issue.
//
// usage: kernel_loop ports REPS
//        kernel_loop phases K N M SPARSITY REPS
//        kernel_loop roundtrip REPS
// Prints one JSON object per line.
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernel.hpp"

using namespace pofa;

namespace {

using Clock = std::chrono::steady_clock;

struct Times {
    double best_us, median_us;
};

template <class F>
Times timed(int reps, F&& body) {
    std::vector<double> us;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        body();
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    return {us.front(), us[us.size() / 2]};
}

// --- ports: throughput of the instruction kinds the kernel issues -------------------------------------
// 12 independent chains of one instruction, so the loop runs at the instruction's throughput, not at
// its latency. Twelve named variables, not an array: GCC keeps an indexed array on the stack and the
// loop then times the stack traffic; they are declared inside the timed lambda for the same reason (a
// captured variable lives in the enclosing frame). The empty asm keeps them in registers, the loop unfolded.
#define POFA_PORT(NAME, EXPR)                                                                                      \
    {                                                                                                            \
        const Times t = timed(reps, [] {                                                                         \
            __m512i v0 = _mm512_set1_epi32(1), v1 = _mm512_set1_epi32(2), v2 = _mm512_set1_epi32(3);             \
            __m512i v3 = _mm512_set1_epi32(4), v4 = _mm512_set1_epi32(5), v5 = _mm512_set1_epi32(6);             \
            __m512i v6 = _mm512_set1_epi32(7), v7 = _mm512_set1_epi32(8), v8 = _mm512_set1_epi32(9);             \
            __m512i v9 = _mm512_set1_epi32(10), v10 = _mm512_set1_epi32(11), v11 = _mm512_set1_epi32(12);        \
            __m512i c = _mm512_set1_epi32(3);                                                                    \
            asm volatile("" : "+v"(c)); /* else c becomes a memory operand: the loop would time loads */          \
            auto f = [&](const __m512i a) { return (EXPR); };                                                    \
            for (int it = 0; it < 20000; ++it) {                                                                 \
                v0 = f(v0), v1 = f(v1), v2 = f(v2), v3 = f(v3), v4 = f(v4), v5 = f(v5);                          \
                v6 = f(v6), v7 = f(v7), v8 = f(v8), v9 = f(v9), v10 = f(v10), v11 = f(v11);                      \
                asm volatile("" : "+v"(v0), "+v"(v1), "+v"(v2), "+v"(v3), "+v"(v4), "+v"(v5), "+v"(v6), "+v"(v7), \
                             "+v"(v8), "+v"(v9), "+v"(v10), "+v"(v11));                                           \
            }                                                                                                    \
        });                                                                                                      \
        std::printf("{\"what\": \"port\", \"instruction\": \"%s\", \"ns_per_instruction\": %.4f}\n", NAME,     \
                    t.best_us * 1e3 / (20000.0 * 12));                                                           \
    }

void ports(int reps) {
    POFA_PORT("vpaddd", _mm512_add_epi32(a, c));
    POFA_PORT("vpunpcklbw (in-lane interleave)", _mm512_unpacklo_epi8(a, c));
    POFA_PORT("vpunpcklwd (in-lane interleave)", _mm512_unpacklo_epi16(a, c));
    POFA_PORT("vunpcklps (in-lane interleave)",
              _mm512_castps_si512(_mm512_unpacklo_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(c))));
    POFA_PORT("vshufi32x4 (lane-crossing)", _mm512_shuffle_i32x4(a, c, 0x44));
    POFA_PORT("vshuff32x4 (lane-crossing)",
              _mm512_castps_si512(_mm512_shuffle_f32x4(_mm512_castsi512_ps(a), _mm512_castsi512_ps(c), 0x44)));
    POFA_PORT("vpunpckldq (in-lane interleave)", _mm512_unpacklo_epi32(a, c));
    POFA_PORT("vunpcklpd (in-lane interleave)",
              _mm512_castpd_si512(_mm512_unpacklo_pd(_mm512_castsi512_pd(a), _mm512_castsi512_pd(c))));
    POFA_PORT("vpermt2d (lane-crossing)", _mm512_permutex2var_epi32(a, c, c));
    POFA_PORT("vpackusdw", _mm512_packus_epi32(a, c));
    POFA_PORT("vpdpbusd", _mm512_dpbusd_epi32(a, c, c));
    POFA_PORT("vcvtdq2ps", _mm512_castps_si512(_mm512_cvtepi32_ps(a)));
    // The accumulation's mix: per vpdpbusd two byte/word interleaves (the entry is per vpdpbusd). If
    // both kinds shared the same two pipes this would take 1.5 cycles; on pipes of their own, 1 cycle.
    POFA_PORT("vpdpbusd + vpunpcklbw + vpunpckhwd",
              _mm512_dpbusd_epi32(a, _mm512_unpacklo_epi8(a, c), _mm512_unpackhi_epi16(a, c)));
    POFA_PORT("vfmadd231ps",
              _mm512_castps_si512(_mm512_fmadd_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(c), _mm512_castsi512_ps(c))));
}

// --- phases: the kernel's own functions on one random layer -------------------------------------------
// Random records as the op packs them (sparse_fc.cpp, pack_records): per row block, K block and row,
// the row's nonzeros in that K block (each position kept with probability 1 - sparsity), four per
// record in K order, the last record of a segment padded with its first position and zero weights.
struct Layer {
    std::vector<QuadRecord> records;
    std::vector<uint32_t> seg;
    std::vector<float> alpha, beta;
    int64_t n_rblocks, n_kblocks;
};

Layer random_layer(int64_t K, int64_t N, double sparsity, std::mt19937& rng) {
    Layer l;
    l.n_rblocks = (N + kRowBlock - 1) / kRowBlock;
    l.n_kblocks = (K + kKBlock - 1) / kKBlock;
    std::bernoulli_distribution keep(1.0 - sparsity);
    std::uniform_int_distribution<int> weight(-127, 127);
    for (int64_t rb = 0; rb < l.n_rblocks; ++rb)
        for (int64_t kb = 0; kb < l.n_kblocks; ++kb)
            for (int64_t r = 0; r < kRowBlock; ++r) {
                l.seg.push_back(static_cast<uint32_t>(l.records.size()));
                if (rb * kRowBlock + r >= N) continue;
                std::vector<uint16_t> ks;
                for (int64_t k = 0; k < std::min(kKBlock, K - kb * kKBlock); ++k)
                    if (keep(rng)) ks.push_back(static_cast<uint16_t>(k));
                for (size_t i = 0; i < ks.size(); i += 4) {
                    QuadRecord q{{ks[i], ks[i], ks[i], ks[i]}, 0};
                    uint32_t w4 = 0;
                    for (size_t j = 0; j < 4 && i + j < ks.size(); ++j) {
                        q.k[j] = ks[i + j];
                        w4 |= static_cast<uint32_t>(static_cast<uint8_t>(weight(rng) | 1)) << (8 * j);
                    }
                    q.w4 = static_cast<int32_t>(w4);
                    l.records.push_back(q);
                }
            }
    l.seg.push_back(static_cast<uint32_t>(l.records.size()));
    l.alpha.assign(static_cast<size_t>(N + kRowBlock), 0.01f);
    l.beta.assign(static_cast<size_t>(N + kRowBlock), 0.5f);
    return l;
}

template <class T>
T* aligned(size_t count) {
    void* p = std::aligned_alloc(64, (count * sizeof(T) + 63) / 64 * 64);
    std::memset(p, 0, count * sizeof(T));
    return static_cast<T*>(p);
}

void phases(int64_t K, int64_t N, int64_t M, double sparsity, int reps) {
    std::mt19937 rng(1);
    const Layer l = random_layer(K, N, sparsity, rng);
    const PackedView w{l.records.data(), l.seg.data(), l.alpha.data(), l.beta.data(), nullptr, nullptr, l.n_kblocks};
    const int64_t tt = panel_tile_tokens(M), tokens = std::min(M, tt), groups = (tokens + kTokenGroup - 1) / kTokenGroup;
    // one token tile (the first tile of M tokens), as one work item of the op sees it
    std::vector<float> x(static_cast<size_t>(M * K));
    std::normal_distribution<float> normal(0.0f, 0.7f);
    for (float& v : x) v = normal(rng);
    const QuantParams qp{255.0f / 6.0f, 127.5f, 255.0f};
    uint8_t* panel = aligned<uint8_t>(static_cast<size_t>(panel_tokens(M) * K));
    int32_t* acc = aligned<int32_t>(static_cast<size_t>(kRowBlock * kMaxChunks * kChunk));
    float* stage = aligned<float>(static_cast<size_t>(kTokenGroup * kStageStride));
    float* out = aligned<float>(static_cast<size_t>(tokens * N));
    const int64_t chunks = (M + kChunk - 1) / kChunk;
    auto pack = [&] { vnni_quantize(x.data(), M, K, PackRange{0, chunks, 0, K}, tt, qp, panel); };
    pack();
    auto block_out = [&](int64_t rb) {
        const int64_t cols = std::min(kRowBlock, N - rb * kRowBlock);
        return BlockOut{rb * kRowBlock, cols, N, out + rb * kRowBlock, nullptr, nullptr};
    };
    auto accumulate = [&] {
        for (int64_t rb = 0; rb < l.n_rblocks; ++rb) vnni_accumulate(w, rb, panel, tt, groups, acc);
    };
    auto epilogue = [&] {
        for (int64_t rb = 0; rb < l.n_rblocks; ++rb) vnni_store(w, tt, groups, tokens, 0, acc, block_out(rb), stage);
    };
    auto both = [&] {
        for (int64_t rb = 0; rb < l.n_rblocks; ++rb) vnni_row_block(w, rb, panel, tt, groups, tokens, 0, acc, block_out(rb), stage);
    };
    const double vpdpbusd = static_cast<double>(l.records.size()) * ((groups + 3) / 4) * std::min<int64_t>(groups, 4);
    auto report = [&](const char* phase, const Times& t, double instructions) {
        std::printf("{\"what\": \"phase\", \"phase\": \"%s\", \"K\": %lld, \"N\": %lld, \"M\": %lld, \"sparsity\": %.3f, "
                    "\"tile_tokens\": %lld, \"records\": %zu, \"best_us\": %.2f, \"median_us\": %.2f",
                    phase, static_cast<long long>(K), static_cast<long long>(N), static_cast<long long>(M), sparsity,
                    static_cast<long long>(tt), l.records.size(), t.best_us, t.median_us);
        if (instructions > 0) std::printf(", \"vpdpbusd_per_ns\": %.3f", instructions / (t.best_us * 1e3));
        std::printf("}\n");
    };
    report("pack (all M tokens)", timed(reps, pack), 0);
    report("accumulate (one tile, every row block)", timed(reps, accumulate), vpdpbusd);
    report("epilogue (f32 output)", timed(reps, epilogue), 0);
    report("accumulate + epilogue", timed(reps, both), vpdpbusd);
    std::free(panel);
    std::free(acc);
    std::free(stage);
    std::free(out);
}

// --- roundtrip: how far apart the two cores are ---------------------------------------------------------
// Two threads, pinned to the first two CPUs this process may run on, pass one cache line back and forth:
// ns per round trip. Why: on the 2-core KVM guest the figures come from, speed is bimodal over time, and
// the slow state is the one where this round trip is ~4x longer (benchmarks/README.md, "Session 14"),
// i.e. the host runs the two virtual CPUs on cores far apart. The sparse op shares more between its
// threads than OpenVINO's dense layer does (each thread reads the whole panel, half of it packed by the
// other), so it loses more there; tagging a run with this figure says which state it saw.
bool pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

int roundtrip(int reps) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 2;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
        if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    if (cpus.size() < 2) {
        std::fprintf(stderr, "kernel_loop: roundtrip needs two CPUs, this process may use %zu\n", cpus.size());
        return 2;
    }
    alignas(64) static std::atomic<int64_t> line{0};
    constexpr int64_t kTrips = 100000;
    std::vector<double> ns;
    for (int r = 0; r < reps; ++r) {
        // both threads pinned, or the figure would not say where the two CPUs are
        if (!pin_to(cpus[0])) {
            std::fprintf(stderr, "kernel_loop: cannot pin a thread to CPU %d\n", cpus[0]);
            return 2;
        }
        line.store(0);
        std::atomic<bool> pinned{true};
        std::thread other([&] {
            if (!pin_to(cpus[1])) pinned = false;
            for (int64_t i = 0; i < kTrips; ++i) {
                while (line.load(std::memory_order_acquire) != 2 * i + 1) _mm_pause();
                line.store(2 * i + 2, std::memory_order_release);
            }
        });
        const auto t0 = Clock::now();
        for (int64_t i = 0; i < kTrips; ++i) {
            line.store(2 * i + 1, std::memory_order_release);
            while (line.load(std::memory_order_acquire) != 2 * i + 2) _mm_pause();
        }
        ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kTrips);
        other.join();
        if (!pinned) {
            std::fprintf(stderr, "kernel_loop: cannot pin a thread to CPU %d\n", cpus[1]);
            return 2;
        }
    }
    std::sort(ns.begin(), ns.end());
    std::printf("{\"what\": \"roundtrip\", \"cpus\": [%d, %d], \"best_ns\": %.1f, \"median_ns\": %.1f}\n", cpus[0],
                cpus[1], ns.front(), ns[ns.size() / 2]);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string what = argc > 1 ? argv[1] : "";
    if (what == "roundtrip" && argc == 3 && std::atoi(argv[2]) > 0) return roundtrip(std::atoi(argv[2]));  // no VNNI needed
    if (!__builtin_cpu_supports("avx512vnni")) {
        std::fprintf(stderr, "kernel_loop: this CPU has no AVX-512 VNNI; the loops time the VNNI kernel only\n");
        return 2;
    }
    if (what == "ports" && argc == 3) {
        ports(std::atoi(argv[2]));
        return 0;
    }
    if (what == "phases" && argc == 7) {
        phases(std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]), std::atof(argv[5]), std::atoi(argv[6]));
        return 0;
    }
    std::fprintf(stderr, "usage: kernel_loop ports REPS | kernel_loop phases K N M SPARSITY REPS | kernel_loop roundtrip REPS\n");
    return 2;
}
