// SparseFullyConnected: shape inference, attributes, weight packing and the threaded evaluate.
// Kernels are in kernel_generic.cpp (portable) and kernel_vnni.cpp (AVX-512 VNNI).
#include "sparse_fc.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <set>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "kernel.hpp"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>  // _mm_pause: SSE2, on every x86-64 CPU (nothing from AVX-512 here, see kernel.hpp)
#else
#include <thread>
#endif
#include "openvino/core/parallel.hpp"
#include "openvino/op/constant.hpp"

namespace pofa {

namespace {

enum Input { X = 0, VALUES, INDICES, ROW_PTR, SCALE, BIAS, FQ, N_INPUTS, POST = N_INPUTS };

// 64-byte aligned scratch: every 64-token chunk of a K position is one aligned load (a load that splits a
// cache line costs ~1.6x in the kernel's inner loop).
struct AlignedFree {
    void operator()(void* p) const { ::operator delete(p, std::align_val_t(64)); }
};
using AlignedBytes = std::unique_ptr<uint8_t, AlignedFree>;

AlignedBytes aligned_bytes(size_t n) {
    return AlignedBytes(static_cast<uint8_t*>(::operator new(std::max<size_t>(n, 64), std::align_val_t(64))));
}

// One step of a spin-wait (on the packing of another running thread, microseconds).
inline void spin_pause() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

// Why the compressed weights are malformed, or "" when they are a valid CSR of an N x K matrix.
std::string csr_error(const int32_t* indices, int64_t nnz, const int32_t* row_ptr, int64_t N, int64_t K) {
    if (row_ptr[0] != 0 || row_ptr[N] != nnz) return "row_ptr must run from 0 to the number of nonzeros";
    for (int64_t n = 0; n < N; ++n) {
        if (row_ptr[n] > row_ptr[n + 1]) return "row_ptr decreases at row " + std::to_string(n);
        for (int32_t i = row_ptr[n]; i < row_ptr[n + 1]; ++i) {
            if (indices[i] < 0 || indices[i] >= K) return "a K index is out of range in row " + std::to_string(n);
            if (i > row_ptr[n] && indices[i] <= indices[i - 1])
                return "K indices are not strictly increasing in row " + std::to_string(n);
        }
    }
    return "";
}

// The CPU plugin calls validate_and_infer_types on every inference (its shape inference for custom
// ops clones the node), always with the same constant memory. The O(nnz) check of the compressed
// weights therefore runs once per distinct weight memory: keyed by the data pointers, the sizes and a
// fingerprint of row_ptr and a sample of the indices (so memory reused for other weights is checked
// again).
bool csr_checked_before(const int32_t* indices, int64_t nnz, const int32_t* row_ptr, int64_t N, int64_t K) {
    uint64_t fingerprint = 1469598103934665603ull;
    // ~64 evenly spaced entries of row_ptr and of the indices, and their last ones: O(1) per call
    auto mix = [&](const int32_t* a, int64_t size) {
        for (int64_t i = 0, step = size > 64 ? size / 64 : 1; i < size; i += step)
            fingerprint = (fingerprint ^ static_cast<uint32_t>(a[i])) * 1099511628211ull;
        if (size > 0) fingerprint = (fingerprint ^ static_cast<uint32_t>(a[size - 1])) * 1099511628211ull;
    };
    mix(row_ptr, N + 1);
    mix(indices, nnz);
    const std::array<uint64_t, 6> key = {reinterpret_cast<uintptr_t>(indices), reinterpret_cast<uintptr_t>(row_ptr),
                                         static_cast<uint64_t>(nnz), static_cast<uint64_t>(N), static_cast<uint64_t>(K),
                                         fingerprint};
    static std::mutex mutex;
    static std::set<std::array<uint64_t, 6>> checked;  // a few entries per weight memory ever seen
    std::lock_guard<std::mutex> lock(mutex);
    return !checked.insert(key).second;
}

std::shared_ptr<ov::op::v0::Constant> constant_input(const ov::Node* node, size_t i) {
    return ov::as_type_ptr<ov::op::v0::Constant>(node->get_input_node_shared_ptr(i));
}

}  // namespace

SparseFullyConnected::Path SparseFullyConnected::choose_path() {
    const char* env = std::getenv("POFA_SPARSE_KERNEL");
    const std::string want = env ? env : "auto";
    if (want == "generic") return Path::Generic;
    if (want == "vnni") {
        OPENVINO_ASSERT(vnni_supported(), "SparseFullyConnected: POFA_SPARSE_KERNEL=vnni but this CPU has no AVX-512 VNNI");
        return Path::Vnni;
    }
    OPENVINO_ASSERT(want == "auto" || want.empty(), "SparseFullyConnected: POFA_SPARSE_KERNEL must be auto, generic or vnni, got '", want, "'");
    static const bool has_vnni = vnni_supported();
    return has_vnni ? Path::Vnni : Path::Generic;
}

// Everything evaluate needs that depends only on the constant inputs.
struct Prepared {
    int64_t K = 0, n_rblocks = 0, n_kblocks = 0;
    QuantParams qp{};
    std::vector<float> alpha, beta;  // per weight row, padded by kRowBlock past N (see PackedView)
    std::vector<float> post;         // per row after a fused GELU (padded like alpha); empty without
    QuantParams out_q{};             // the consumer's quantisation, when output_levels > 0
    std::vector<int64_t> split_row0, split_n;  // per output: its first weight row and its width
    struct Block {
        int64_t row0, cols, out;  // weight rows row0 .. row0 + cols - 1, all of output `out`
    };
    std::vector<Block> blocks;  // the VNNI path's row blocks (n_rblocks of them)
    // VNNI layout, see PackedView in kernel.hpp
    std::vector<QuadRecord> records;
    std::vector<uint32_t> seg;

    PackedView view() const {
        return PackedView{records.data(), seg.data(), alpha.data(), beta.data(),
                          post.empty() ? nullptr : post.data(), nullptr, n_kblocks};
    }
};

SparseFullyConnected::SparseFullyConnected(const ov::OutputVector& args, int64_t in_features, int64_t out_features,
                                           int64_t levels, std::string activation, int64_t output_levels,
                                           bool input_u8, std::vector<int64_t> out_splits, std::string linears,
                                           std::string handoff)
    : Op(args), m_in_features(in_features), m_out_features(out_features), m_levels(levels),
      m_activation(std::move(activation)), m_output_levels(output_levels), m_input_u8(input_u8),
      m_out_splits(std::move(out_splits)), m_linears(std::move(linears)), m_handoff(std::move(handoff)) {
    constructor_validate_and_infer_types();
}

std::vector<int64_t> SparseFullyConnected::splits() const {
    return m_out_splits.empty() ? std::vector<int64_t>{m_out_features} : m_out_splits;
}

void SparseFullyConnected::validate_and_infer_types() {
    NODE_VALIDATION_CHECK(this, m_activation == "none" || m_activation == "gelu_erf",
                          "activation must be none or gelu_erf, got '", m_activation, "'");
    const bool gelu = m_activation == "gelu_erf";
    NODE_VALIDATION_CHECK(this, m_output_levels == 0 || (m_output_levels >= 2 && m_output_levels <= 256),
                          "output_levels must be 0 (f32 output) or in [2, 256], got ", m_output_levels);
    NODE_VALIDATION_CHECK(this, m_handoff == "rows" || m_handoff == "panel", "handoff must be rows or panel, got '",
                          m_handoff, "'");
    NODE_VALIDATION_CHECK(this, m_handoff == "rows" || m_input_u8 || m_output_levels,
                          "handoff panel needs a u8 input (input_u8) or a u8 output (output_levels)");
    // A producer op in the graph (when read from an IR; the CPU plugin's clones see Parameters) must
    // write the layout this op reads: a panel read as rows (or back) would be wrong silently when the
    // widths happen to match.
    if (const auto producer = ov::as_type_ptr<SparseFullyConnected>(get_input_node_shared_ptr(X)); producer && m_input_u8)
        NODE_VALIDATION_CHECK(this, producer->m_handoff == m_handoff, "handoff: its producer writes '",
                              producer->m_handoff, "' codes, this op reads '", m_handoff, "'");
    const size_t n_inputs = N_INPUTS + (gelu ? 1 : 0) + (m_output_levels ? 1 : 0) + (panel_in() ? 1 : 0);
    NODE_VALIDATION_CHECK(this, get_input_size() == n_inputs, "expects ", n_inputs, " inputs with activation ",
                          m_activation, m_output_levels ? " and u8 output" : "", panel_in() ? " and a panel input" : "",
                          ", got ", get_input_size());
    if (m_output_levels) {
        const size_t i = N_INPUTS + (gelu ? 1 : 0);
        NODE_VALIDATION_CHECK(this, get_input_element_type(i).compatible(ov::element::f32) &&
                                        get_input_partial_shape(i).compatible(ov::PartialShape{4}),
                              "input ", i, " (out_fq) must be f32 [4]");
        if (const auto c = constant_input(this, i)) {
            const float* f = c->get_data_ptr<float>();
            NODE_VALIDATION_CHECK(this, f[1] > f[0], "out_fq input_high must exceed input_low");
        }
    }
    if (gelu) {
        NODE_VALIDATION_CHECK(this, get_input_element_type(POST).compatible(ov::element::f32), "input 7 must be f32");
        NODE_VALIDATION_CHECK(this, get_input_partial_shape(POST).compatible(ov::PartialShape{m_out_features}),
                              "input 7 must have shape [", m_out_features, "], got ", get_input_partial_shape(POST));
    }
    NODE_VALIDATION_CHECK(this, m_in_features > 0 && m_out_features > 0, "in_features and out_features must be > 0");
    NODE_VALIDATION_CHECK(this, m_levels >= 2 && m_levels <= 256, "levels must be in [2, 256] (u8 activations), got ", m_levels);
    const ov::element::Type expected[N_INPUTS] = {m_input_u8 ? ov::element::u8 : ov::element::f32, ov::element::i8,
                                                 ov::element::i32, ov::element::i32,
                                                 ov::element::f32, ov::element::f32, ov::element::f32};
    for (size_t i = 0; i < N_INPUTS; ++i)
        NODE_VALIDATION_CHECK(this, get_input_element_type(i).compatible(expected[i]), "input ", i, " must be ",
                              expected[i], ", got ", get_input_element_type(i));
    const auto n = m_out_features;
    const ov::PartialShape fixed[N_INPUTS] = {{}, {-1}, {-1}, {n + 1}, {n}, {n}, {4}};
    for (size_t i = 1; i < N_INPUTS; ++i)
        NODE_VALIDATION_CHECK(this, get_input_partial_shape(i).compatible(fixed[i]), "input ", i, " must have shape ",
                              fixed[i], ", got ", get_input_partial_shape(i));
    // Check the compressed weights here when they are constants (always, in an IR), so that a malformed
    // CSR fails read_model / compile_model with its reason: an exception thrown in evaluate is not
    // reliably reported by the CPU plugin (with INFERENCE_NUM_THREADS=1, OpenVINO 2026.4 returned an
    // empty output instead). Once per weight memory, see csr_checked_before.
    const auto values = constant_input(this, VALUES), indices = constant_input(this, INDICES);
    const auto row_ptr = constant_input(this, ROW_PTR), fq = constant_input(this, FQ);
    if (values && indices && row_ptr && get_input_element_type(INDICES) == ov::element::i32 &&
        get_input_element_type(ROW_PTR) == ov::element::i32) {
        const int64_t nnz = static_cast<int64_t>(shape_size(indices->get_shape()));
        NODE_VALIDATION_CHECK(this, static_cast<int64_t>(shape_size(values->get_shape())) == nnz,
                              "values and indices differ in length");
        NODE_VALIDATION_CHECK(this, static_cast<int64_t>(shape_size(row_ptr->get_shape())) == n + 1,
                              "row_ptr must have out_features + 1 entries");
        const int32_t* idx = indices->get_data_ptr<int32_t>();
        const int32_t* ptr = row_ptr->get_data_ptr<int32_t>();
        if (!csr_checked_before(idx, nnz, ptr, n, m_in_features)) {
            const std::string error = csr_error(idx, nnz, ptr, n, m_in_features);
            NODE_VALIDATION_CHECK(this, error.empty(), "malformed compressed weights: ", error);
        }
    }
    if (fq && get_input_element_type(FQ) == ov::element::f32 && shape_size(fq->get_shape()) == 4) {
        const float* f = fq->get_data_ptr<float>();
        NODE_VALIDATION_CHECK(this, f[1] > f[0], "FakeQuantize input_high must exceed input_low");
    }
    const std::vector<int64_t> widths = splits();
    int64_t total = 0;
    for (const int64_t w : widths) {
        NODE_VALIDATION_CHECK(this, w > 0, "out_splits must be positive, got ", w);
        total += w;
    }
    NODE_VALIDATION_CHECK(this, total == m_out_features, "out_splits must sum to out_features (", m_out_features,
                          "), they sum to ", total);
    NODE_VALIDATION_CHECK(this, widths.size() == 1 || (!gelu && m_output_levels == 0),
                          "several outputs (out_splits) need activation none and f32 output");
    // The tokens' shape [..., K]: input 0's, or with a panel input the producer's input's (`like`).
    ov::PartialShape out = get_input_partial_shape(panel_in() ? n_inputs - 1 : X);
    if (out.rank().is_static()) {
        NODE_VALIDATION_CHECK(this, out.rank().get_length() >= 1, "input 0 must have rank >= 1");
        NODE_VALIDATION_CHECK(this, panel_in() || out[out.rank().get_length() - 1].compatible(m_in_features),
                              "input 0 must end in ", m_in_features, ", got ", out);
    }
    if (panel_in()) {
        const int64_t width = m_in_features;  // one byte per token and K position
        NODE_VALIDATION_CHECK(this, get_input_partial_shape(X).compatible(ov::PartialShape{-1, width}),
                              "input 0 (a panel) must be [tokens, ", width, "], got ", get_input_partial_shape(X));
    }
    set_output_size(widths.size());
    for (size_t i = 0; i < widths.size(); ++i) {
        if (out.rank().is_static()) out[out.rank().get_length() - 1] = ov::Dimension(widths[i]);
        set_output_type(i, m_output_levels ? ov::element::u8 : ov::element::f32, out);
    }
    if (panel_out()) {  // one output (checked above): the consumer's panel of this op's M tokens
        ov::Dimension tokens = ov::Dimension::dynamic();
        if (out.rank().is_static()) {
            int64_t M = 1;
            for (int64_t d = 0; d + 1 < out.rank().get_length() && M >= 0; ++d)
                M = out[d].is_static() ? M * out[d].get_length() : -1;
            if (M >= 0) tokens = ov::Dimension(panel_tokens(M));
        }
        set_output_type(0, ov::element::u8, ov::PartialShape{tokens, m_out_features});
    }
    // The kernel is chosen here, i.e. when the model is read or compiled (the CPU plugin clones the
    // op, which validates again), not in evaluate: a bad POFA_SPARSE_KERNEL then fails compile_model
    // with its message. Exceptions thrown while inferring are not reliably reported by the CPU plugin
    // (OpenVINO 2026.4, INFERENCE_NUM_THREADS=1: an exception from evaluate left an empty output and
    // no error), so everything that can fail is checked here.
    m_path = choose_path();
}

std::shared_ptr<ov::Node> SparseFullyConnected::clone_with_new_inputs(const ov::OutputVector& new_args) const {
    // A clone packs its own copy: its constant inputs may differ from ours.
    return std::make_shared<SparseFullyConnected>(new_args, m_in_features, m_out_features, m_levels, m_activation,
                                                  m_output_levels, m_input_u8, m_out_splits, m_linears, m_handoff);
}

bool SparseFullyConnected::visit_attributes(ov::AttributeVisitor& visitor) {
    visitor.on_attribute("in_features", m_in_features);
    visitor.on_attribute("out_features", m_out_features);
    visitor.on_attribute("levels", m_levels);
    visitor.on_attribute("activation", m_activation);
    visitor.on_attribute("output_levels", m_output_levels);
    visitor.on_attribute("input_u8", m_input_u8);
    visitor.on_attribute("out_splits", m_out_splits);
    visitor.on_attribute("linears", m_linears);
    visitor.on_attribute("handoff", m_handoff);
    return true;
}

bool SparseFullyConnected::has_evaluate() const {
    return true;
}

namespace {

// The VNNI kernel's records (PackedView in kernel.hpp) from the CSR weights: per row block, K block and
// row, the row's nonzeros in that K block four per record, in K order; the last record of a segment
// repeats its first position with zero weights where fewer than 4 are left.
void pack_records(Prepared& p, const int8_t* values, const int32_t* indices, const int32_t* row_ptr) {
    p.n_kblocks = (p.K + kKBlock - 1) / kKBlock;
    p.seg.assign(static_cast<size_t>(p.n_rblocks * p.n_kblocks * kRowBlock + 1), 0);
    int64_t s = 0;
    for (int64_t rb = 0; rb < p.n_rblocks; ++rb) {
        std::vector<int32_t> next(kRowBlock, 0);  // each row's first nonzero not yet placed (CSR index)
        for (int64_t r = 0; r < p.blocks[rb].cols; ++r) next[r] = row_ptr[p.blocks[rb].row0 + r];
        for (int64_t kb = 0; kb < p.n_kblocks; ++kb) {
            const int64_t k_begin = kb * kKBlock, k_end = k_begin + kKBlock;
            for (int64_t r = 0; r < kRowBlock; ++r, ++s) {
                p.seg[s] = static_cast<uint32_t>(p.records.size());
                if (r >= p.blocks[rb].cols) continue;  // a short block's padding rows: no records
                const int32_t end = row_ptr[p.blocks[rb].row0 + r + 1];
                int32_t& i = next[r];
                while (i < end && indices[i] < k_end) {
                    const auto first = static_cast<uint16_t>(indices[i] - k_begin);
                    QuadRecord q{{first, first, first, first}, 0};
                    uint32_t w4 = 0;
                    for (int j = 0; j < 4 && i < end && indices[i] < k_end; ++j, ++i) {
                        q.k[j] = static_cast<uint16_t>(indices[i] - k_begin);
                        w4 |= static_cast<uint32_t>(static_cast<uint8_t>(values[i])) << (8 * j);
                    }
                    q.w4 = static_cast<int32_t>(w4);
                    p.records.push_back(q);
                }
            }
        }
    }
    p.seg[s] = static_cast<uint32_t>(p.records.size());
}

}  // namespace

const Prepared& SparseFullyConnected::prepare(const ov::TensorVector& inputs) const {
    std::call_once(m_once, [&] {
        auto p = std::make_shared<Prepared>();
        const int64_t K = m_in_features, N = m_out_features;
        p->K = K;
        const auto& tv = inputs[VALUES];
        const auto& ti = inputs[INDICES];
        const auto& tr = inputs[ROW_PTR];
        const int64_t nnz = static_cast<int64_t>(tv.get_size());
        OPENVINO_ASSERT(static_cast<int64_t>(ti.get_size()) == nnz, "SparseFullyConnected: values and indices differ in length");
        OPENVINO_ASSERT(static_cast<int64_t>(tr.get_size()) == N + 1, "SparseFullyConnected: row_ptr must have N + 1 entries");
        const int8_t* values = tv.data<const int8_t>();
        const int32_t* indices = ti.data<const int32_t>();
        const int32_t* row_ptr = tr.data<const int32_t>();
        const std::string error = csr_error(indices, nnz, row_ptr, N, K);
        OPENVINO_ASSERT(error.empty(), "SparseFullyConnected: malformed compressed weights: ", error);
        // Activation quantisation and per-row dequantisation constants (double, then rounded once).
        const float* fq = inputs[FQ].data<const float>();
        const double il = fq[0], ih = fq[1], ol = fq[2], oh = fq[3], levels = static_cast<double>(m_levels);
        OPENVINO_ASSERT(ih > il, "SparseFullyConnected: FakeQuantize input_high must exceed input_low");
        p->qp.scale = static_cast<float>((levels - 1.0) / (ih - il));
        p->qp.shift = static_cast<float>(-il * (levels - 1.0) / (ih - il));
        p->qp.qmax = static_cast<float>(levels - 1.0);
        const double step = (oh - ol) / (levels - 1.0);
        // Outputs and row blocks: each output's rows start a new block.
        for (const int64_t width : splits()) {
            const int64_t row0 = p->split_row0.empty() ? 0 : p->split_row0.back() + p->split_n.back();
            const int64_t out = static_cast<int64_t>(p->split_n.size());
            p->split_row0.push_back(row0);
            p->split_n.push_back(width);
            for (int64_t r = 0; r < width; r += kRowBlock)
                p->blocks.push_back({row0 + r, std::min(kRowBlock, width - r), out});
        }
        p->n_rblocks = static_cast<int64_t>(p->blocks.size());
        // Per weight row; kRowBlock more, read (and not written out) for a short block's padding rows.
        p->alpha.assign(N + kRowBlock, 0.0f);
        p->beta.assign(N + kRowBlock, 0.0f);
        const float* scale = inputs[SCALE].data<const float>();
        const float* bias = inputs[BIAS].data<const float>();
        for (int64_t n = 0; n < N; ++n) {
            int64_t rowsum = 0;
            for (int32_t i = row_ptr[n]; i < row_ptr[n + 1]; ++i) rowsum += values[i];
            p->alpha[n] = static_cast<float>(static_cast<double>(scale[n]) * step);
            p->beta[n] = static_cast<float>(static_cast<double>(scale[n]) * ol * static_cast<double>(rowsum) + bias[n]);
        }
        if (m_activation == "gelu_erf") {
            OPENVINO_ASSERT(inputs.size() > POST && static_cast<int64_t>(inputs[POST].get_size()) == N,
                            "SparseFullyConnected: activation gelu_erf needs input 7 with N values");
            const float* post = inputs[POST].data<const float>();
            p->post.assign(N + kRowBlock, 0.0f);
            std::copy(post, post + N, p->post.begin());
        }
        if (m_output_levels) {
            const float* of = inputs[N_INPUTS + (m_activation == "gelu_erf" ? 1 : 0)].data<const float>();
            const double oil = of[0], oih = of[1], olv = static_cast<double>(m_output_levels);
            OPENVINO_ASSERT(oih > oil, "SparseFullyConnected: out_fq input_high must exceed input_low");
            p->out_q.scale = static_cast<float>((olv - 1.0) / (oih - oil));
            p->out_q.shift = static_cast<float>(-oil * (olv - 1.0) / (oih - oil));
            p->out_q.qmax = static_cast<float>(olv - 1.0);
        }
        if (m_path != Path::Vnni) {  // the portable path reads the CSR inputs directly
            m_prepared = std::move(p);
            return;
        }
        pack_records(*p, values, indices, row_ptr);
        m_prepared = std::move(p);
    });
    return *m_prepared;
}

bool SparseFullyConnected::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
    const Prepared& p = prepare(inputs);
    const ov::Tensor& x = inputs[X];
    const bool pin = panel_in(), pout = panel_out();
    // The tokens' shape [..., K]: input 0's, or with a panel input the producer's input's (`like`)
    ov::Shape out_shape = pin ? inputs.back().get_shape() : x.get_shape();
    OPENVINO_ASSERT(!out_shape.empty() && (pin || static_cast<int64_t>(out_shape.back()) == p.K),
                    "SparseFullyConnected: input 0 must end in ", p.K, ", got ", out_shape);
    const int64_t M = static_cast<int64_t>(ov::shape_size(out_shape) / std::max<size_t>(out_shape.back(), 1));
    const size_t n_out = p.split_n.size();
    OPENVINO_ASSERT(outputs.size() == n_out, "SparseFullyConnected: expects ", n_out, " output tensors");
    for (size_t o = 0; o < n_out; ++o) {
        out_shape.back() = static_cast<size_t>(p.split_n[o]);
        outputs[o].set_shape(out_shape);
    }
    const int64_t N = p.split_n[0];  // (a panel output is the op's only output)
    if (pout) outputs[0].set_shape({static_cast<size_t>(panel_tokens(M)), static_cast<size_t>(N)});
    if (pin)
        OPENVINO_ASSERT(static_cast<int64_t>(x.get_size()) == panel_tokens(M) * p.K,
                        "SparseFullyConnected: the panel input does not hold ", M, " tokens");
    if (M == 0) return true;
    // f32 or u8 on each side (the u8 hand-off, kernel.hpp); exactly one of xd / xu8 is set, and of
    // yd[o] / yu8 (u8 output only with one output)
    const float* xd = m_input_u8 ? nullptr : x.data<const float>();
    const uint8_t* xu8 = m_input_u8 ? x.data<const uint8_t>() : nullptr;
    std::vector<float*> yd(n_out, nullptr);
    for (size_t o = 0; o < n_out && !m_output_levels; ++o) yd[o] = outputs[o].data<float>();
    uint8_t* yu8 = m_output_levels ? outputs[0].data<uint8_t>() : nullptr;
    const QuantParams* out_q = m_output_levels ? &p.out_q : nullptr;
    const int64_t K = p.K;
    const int threads = std::max(1, parallel_get_max_threads());

    if (m_path == Path::Generic) {
        std::vector<uint8_t> q(static_cast<size_t>(M * K));
        const int64_t m_chunk = std::max<int64_t>(1, (M + threads - 1) / threads);
        // A panel is read (and a panel output written) through row-major codes: the portable path is the
        // reference, not the fast one.
        if (pin)
            generic_panel_to_rows(xu8, M, K, q.data());
        else
            ov::parallel_for((M + m_chunk - 1) / m_chunk, [&](size_t c) {
                const int64_t b = static_cast<int64_t>(c) * m_chunk;
                const int64_t e = std::min(M, b + m_chunk);
                if (xu8)
                    std::copy(xu8 + b * K, xu8 + e * K, q.data() + b * K);
                else
                    generic_quantize(xd, K, b, e, p.qp, q.data());
            });
        std::vector<uint8_t> rows_u8(pout ? static_cast<size_t>(M * N) : 0);
        if (pout) yu8 = rows_u8.data();
        constexpr int64_t rows_per_task = 16;
        std::vector<std::array<int64_t, 3>> tasks;  // (output, first row, end row), within one output
        for (size_t o = 0; o < n_out; ++o)
            for (int64_t b = 0; b < p.split_n[o]; b += rows_per_task)
                tasks.push_back({static_cast<int64_t>(o), p.split_row0[o] + b,
                                 p.split_row0[o] + std::min(p.split_n[o], b + rows_per_task)});
        ov::parallel_for(tasks.size(), [&](size_t c) {
            const auto [o, b, e] = tasks[c];
            generic_rows(inputs[VALUES].data<const int8_t>(), inputs[INDICES].data<const int32_t>(),
                         inputs[ROW_PTR].data<const int32_t>(), p.alpha.data(), p.beta.data(),
                         p.post.empty() ? nullptr : p.post.data(), out_q, q.data(), M, K, p.split_n[o],
                         p.split_row0[o], b, e, yd[o], yu8);
        });
        if (pout) generic_rows_to_panel(rows_u8.data(), M, N, outputs[0].data<uint8_t>());
        return true;
    }

    // VNNI path. Tokens in tiles of up to 128 (2 chunks of 64); the quantised activations of all
    // tiles are packed once per call into the 64-byte aligned panel (kernel.hpp has the layout).
    const int64_t chunks_total = (M + kChunk - 1) / kChunk;
    const int64_t tile_tokens = panel_tile_tokens(M);
    const int64_t n_tiles = panel_tokens(M) / tile_tokens;
    const size_t tile_bytes = static_cast<size_t>(K * tile_tokens);
    // The panel is per calling thread (the CPU plugin may run several streams through this op at once)
    // and grow-only: allocating it per call costs a page-mapping round trip once it passes malloc's
    // mmap threshold (128 KiB), i.e. for a few hundred tokens. A panel input is used where it lies when
    // 64-byte aligned (the kernel's loads are aligned), else copied.
    thread_local AlignedBytes panel_buf;
    thread_local size_t panel_size = 0;
    const size_t need = tile_bytes * static_cast<size_t>(n_tiles);
    const bool in_place = pin && reinterpret_cast<uintptr_t>(xu8) % 64 == 0;
    if (!in_place && panel_size < need) {
        panel_buf = aligned_bytes(need);
        panel_size = need;
    }
    uint8_t* const own = panel_buf.get();  // the calling thread's (a worker's thread_local is another)
    if (pin && !in_place) std::memcpy(own, xu8, need);
    const uint8_t* const panel_ptr = in_place ? xu8 : own;
    // Quantise and pack in runs of whole 64-token chunks (the last chunk is zero-padded). With fewer
    // chunks than threads (up to 64 tokens on 2 threads), each chunk's K positions are split too, in
    // slices of whole 16-position steps, so that every thread packs: at 16 tokens the packing of K = 4096
    // was a third of the call on one thread (benchmarks/README.md, "Session 11"). One packing unit =
    // one run x one slice.
    const int64_t run = std::max<int64_t>(1, (chunks_total + threads - 1) / threads);
    const int64_t n_runs = (chunks_total + run - 1) / run;
    const int64_t k_steps = (K + 15) / 16;
    const int64_t k_slices = std::min<int64_t>(k_steps, std::max<int64_t>(1, threads / n_runs));
    const int64_t k_slice = (k_steps + k_slices - 1) / k_slices * 16;
    const int64_t n_units = pin ? 0 : n_runs * k_slices;
    auto pack_unit = [&](int64_t u) {
        const int64_t c = u / k_slices, ks = u % k_slices;
        const PackRange range{c * run, std::min(chunks_total, (c + 1) * run), ks * k_slice,
                              std::min(K, (ks + 1) * k_slice)};
        if (range.k_begin >= range.k_end) return;
        if (xu8)
            vnni_pack_u8(xu8, M, K, range, tile_tokens, own);
        else
            vnni_quantize(xd, M, K, range, tile_tokens, p.qp, own);
    };
    // The packing runs inside the compute's parallel_for: each thread's first work item claims packing
    // units until none is left, then waits until every unit is packed (a thread only ever waits for
    // units that a running thread has claimed, so this cannot deadlock, whichever threads run the items).
    // Why not a parallel_for of its own before the compute: one fork and join fewer per call. DistilBERT
    // 1 x 128 end to end: 1.025x less time, median of 10 interleaved rounds, 9 in its favour (results/
    // sparse-kernel/library-ab-packing-in-compute-s14.json); per layer the difference is below the noise.
    std::atomic<int64_t> next_unit{0}, units_done{0};
    auto ensure_packed = [&] {
        if (units_done.load(std::memory_order_acquire) == n_units) return;
        for (int64_t u = next_unit.fetch_add(1); u < n_units; u = next_unit.fetch_add(1)) {
            pack_unit(u);
            units_done.fetch_add(1, std::memory_order_release);
        }
        while (units_done.load(std::memory_order_acquire) < n_units) spin_pause();
    };
    PackedView view = p.view();
    view.out_q = out_q;
    const int64_t n_rb = p.n_rblocks;
    // Work items (tile, row block), row-block-major: a thread takes a contiguous range of items
    // (ov::parallel_for splits statically), so it keeps a row block's packed weights (~70-300 KB at 90%
    // zeros) in L2 while it walks over the tiles. Tile-major kept each tile's panel instead, and with
    // several tiles (batch 8 x 128) re-streamed all its row blocks' weights once per tile: 2-4% slower
    // end to end on DistilBERT, inconsistent on BERT (benchmarks/README.md, "Work order"). With one
    // tile (up to 128 tokens) both orders are the same.
    ov::parallel_for(static_cast<size_t>(n_tiles * n_rb), [&](size_t i) {
        ensure_packed();
        const int64_t t = static_cast<int64_t>(i) % n_tiles, rb = static_cast<int64_t>(i) / n_tiles;
        const int64_t m0 = t * tile_tokens;
        const int64_t tokens = std::min(tile_tokens, M - m0);
        const int64_t groups = (tokens + kTokenGroup - 1) / kTokenGroup;
        alignas(64) thread_local int32_t acc[kRowBlock * kMaxChunks * kChunk];
        alignas(64) thread_local float stage[kTokenGroup * kStageStride];
        const Prepared::Block& block = p.blocks[rb];
        const int64_t col0 = block.row0 - p.split_row0[block.out];  // the block's first column in its output
        float* f32 = yd[block.out];
        const BlockOut dst{block.row0, block.cols, p.split_n[block.out], f32 ? f32 + col0 : nullptr,
                           yu8 ? yu8 + col0 : nullptr,
                           pout ? yu8 + t * N * tile_tokens : nullptr};
        vnni_row_block(view, rb, panel_ptr + tile_bytes * static_cast<size_t>(t), tile_tokens, groups, tokens, m0,
                       acc, dst, stage);
    });
    return true;
}

}  // namespace pofa
