// Interleaved sync inferences of two one-input IRs, timed from C++ (layer_bench.py --harness cpp compiles and
// runs this; not part of the library). Why: a Python `request.infer()` costs ~4 us per call on top of the
// inference on the 2-core EPYC measured (768 x 768 at 128 tokens: 95 / 40 us dense / sparse through Python,
// 90 / 36 us from here, same state), time that belongs to neither layer and that pulls a per-layer ratio
// towards 1. OpenVINO's own benchmark_app (C++) times without it.
//
// usage: infer_loop EXT THREADS ROUNDS ITERS WARMUP INPUT A.xml B.xml
//   EXT: the SparseFullyConnected library; INPUT: raw float32, the input tensor's element count (both
//   IRs take the same static input); each request is compiled as layer_bench.py compiles it (f32 hint,
//   one stream, THREADS threads, latency hint) and its own input tensor is filled from INPUT.
// Prints one JSON object per round: the median us of ITERS inferences of A and of B, run A then B in
// even rounds, B then A in odd ones.
#include <openvino/openvino.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

double median_us(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double timed_median(ov::InferRequest& request, int iters) {
    std::vector<double> us;
    us.reserve(static_cast<size_t>(iters));
    for (int i = 0; i < iters; ++i) {
        const auto start = std::chrono::steady_clock::now();
        request.infer();
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
    return median_us(us);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::fprintf(stderr, "usage: infer_loop EXT THREADS ROUNDS ITERS WARMUP INPUT A.xml B.xml\n");
        return 2;
    }
    const int threads = std::atoi(argv[2]), rounds = std::atoi(argv[3]), iters = std::atoi(argv[4]),
              warmup = std::atoi(argv[5]);
    if (threads < 1 || rounds < 1 || iters < 1 || warmup < 0) {
        std::fprintf(stderr, "infer_loop: THREADS, ROUNDS and ITERS must be >= 1, WARMUP >= 0\n");
        return 2;
    }
    try {
        ov::Core core;
        core.add_extension(std::string(argv[1]));
        const ov::AnyMap config{{"INFERENCE_PRECISION_HINT", "f32"}, {"NUM_STREAMS", 1},
                                {"INFERENCE_NUM_THREADS", threads}, {"PERFORMANCE_HINT", "LATENCY"}};
        std::ifstream input(argv[6], std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
        ov::InferRequest requests[2];
        for (int v = 0; v < 2; ++v) {
            requests[v] = core.compile_model(std::string(argv[7 + v]), "CPU", config).create_infer_request();
            ov::Tensor x = requests[v].get_input_tensor();
            if (x.get_element_type() != ov::element::f32 || x.get_byte_size() != bytes.size()) {
                std::fprintf(stderr, "infer_loop: %s takes %zu bytes of input, %s holds %zu (both must be f32)\n",
                             argv[7 + v], x.get_byte_size(), argv[6], bytes.size());
                return 2;
            }
            std::copy(bytes.begin(), bytes.end(), static_cast<char*>(x.data()));
            for (int i = 0; i < warmup; ++i) requests[v].infer();
        }
        for (int r = 0; r < rounds; ++r) {
            double us[2];
            for (int j = 0; j < 2; ++j) {
                const int v = r % 2 == 0 ? j : 1 - j;
                us[v] = timed_median(requests[v], iters);
            }
            std::printf("{\"round\": %d, \"a_us\": %.3f, \"b_us\": %.3f}\n", r, us[0], us[1]);
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "infer_loop: %s\n", e.what());
        return 1;
    }
    return 0;
}
