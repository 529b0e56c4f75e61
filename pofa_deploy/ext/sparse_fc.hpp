// SparseFullyConnected: a quantised Linear whose i8 weights are stored compressed (CSR) and run by a
// sparse int8 kernel. It replaces NNCF's  FakeQuantize(x) -> MatMul(i8 weights * scale) [-> Add(bias)].
//
// Inputs (1-6 must be constants; they are checked when the op is validated and packed into the
// kernel's layout once per op instance, at the first evaluate):
//   0  x        f32 [..., K]   the activation *before* the FakeQuantize (any rank >= 1, dynamic dims)
//   1  values   i8  [nnz]      the nonzero i8 weight codes, row by row (row n = output channel n)
//   2  indices  i32 [nnz]      their K positions, strictly increasing within a row
//   3  row_ptr  i32 [N + 1]    row n's nonzeros are values[row_ptr[n] .. row_ptr[n+1])
//   4  scale    f32 [N]        per-output-channel weight scale (NNCF's symmetric i8: zero point 0)
//   5  bias     f32 [N]        zeros when the Linear has none
//   6  fq       f32 [4]        input_low, input_high, output_low, output_high of the activation
//                              FakeQuantize (per tensor; asymmetric ranges are fine)
//   7  post     f32 [N]        only with activation "gelu_erf": the per-channel factor after the GELU
//   next out_fq f32 [4]        only with output_levels > 0: the FakeQuantize (input_low, input_high,
//                              output_low, output_high) of the op this one feeds, whose codes it writes
//   last like   any [..., *]   only with input_u8 and handoff "panel": the producer's input, read for
//                              its shape only (the panel input has lost the tokens' shape: see below)
// Attributes: in_features (K), out_features (N), levels (of the FakeQuantize, 2..256), activation
// ("none", the default, or "gelu_erf": the op also computes the Gelu(ERF) -> Multiply(post) that
// followed the Linear, see kernel.hpp for why and how), output_levels (default 0: f32 output; > 0: u8
// codes of out_fq with that many levels, for a consumer with input_u8), input_u8 (default false: input 0
// is f32; true: input 0 is u8 codes of this op's own FakeQuantize, written by a producer op),
// out_splits (the widths of the op's outputs, summing to N; default [N], one output: see below),
// linears (informational: the names of the Linears the outputs compute, ";"-separated, for the zero
// check; the kernel does not read it), handoff (the layout of the u8 codes passed between two ops:
// "rows", the default, [..., N] row-major; "panel", the consumer's packed layout, kernel.hpp: the
// producer's output is then u8 [panel_tokens(M), 2 * ceil(N / 2)] and the consumer takes the extra
// input `like` for its output's shape).
// Several outputs: Linears that read the same FakeQuantize'd input (q, k and v of an attention layer)
// are one op whose weight rows are theirs stacked, and output i is rows [sum of splits before i, + splits[i]).
// Why: one quantisation and packing of the shared input instead of three, one pair of parallel regions,
// and more row blocks to share between threads (benchmarks/README.md, "q/k/v as one op"). Only with
// activation "none" and f32 output.
// Output (each): f32 [..., N]:  y[m, n] = scale[n] * sum_k fq(x[m, k]) * w[n, k] + bias[n] (then, with
// gelu_erf, y = gelu(y) * post[n]), computed as
//   q = round_half_even(clamp((x - input_low) * (levels - 1) / (input_high - input_low), 0, levels - 1))  (u8)
//   y = scale[n] * (step * sum_k q * w + output_low * sum_k w) + bias[n],  step = (oh - ol) / (levels - 1)
// with exact int32 sums (u8 x i8 products), i.e. the zero point of the u8 code is folded into a
// per-channel constant instead of being subtracted from every activation.
//
// Environment, read when the op is validated (model read / compiled): POFA_SPARSE_KERNEL=auto (default:
// VNNI when the CPU has it) | generic | vnni (error if the CPU lacks AVX-512 VNNI). Threads come from
// OpenVINO's pool (ov::parallel_for), so the plugin's INFERENCE_NUM_THREADS applies.
//
// How the CPU plugin runs it (OpenVINO 2026.4): as a "Reference" node that calls evaluate() with the
// input tensors on every inference (constants included, same memory each time), after re-running
// validate_and_infer_types on a clone for shape inference; so validation stays cheap and the packed
// weights are cached in the op.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "openvino/op/op.hpp"

namespace pofa {

struct Prepared;

class SparseFullyConnected : public ov::op::Op {
public:
    // Type name and version ("extension") must match the Python twin in pofa_deploy/sparse_kernel.py,
    // which writes the IR; reading the IR with this library added builds this class.
    OPENVINO_OP("SparseFullyConnected");

    SparseFullyConnected() = default;
    SparseFullyConnected(const ov::OutputVector& args, int64_t in_features, int64_t out_features, int64_t levels,
                         std::string activation = "none", int64_t output_levels = 0, bool input_u8 = false,
                         std::vector<int64_t> out_splits = {}, std::string linears = "", std::string handoff = "rows");

    void validate_and_infer_types() override;
    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override;
    bool visit_attributes(ov::AttributeVisitor& visitor) override;
    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
    bool has_evaluate() const override;

private:
    enum class Path { Generic, Vnni };
    static Path choose_path();
    const Prepared& prepare(const ov::TensorVector& inputs) const;
    std::vector<int64_t> splits() const;
    bool panel_in() const { return m_input_u8 && m_handoff == "panel"; }
    bool panel_out() const { return m_output_levels > 0 && m_handoff == "panel"; }

    int64_t m_in_features = 0;
    int64_t m_out_features = 0;
    int64_t m_levels = 256;
    std::string m_activation = "none";
    int64_t m_output_levels = 0;
    bool m_input_u8 = false;
    std::vector<int64_t> m_out_splits;  // empty: one output of out_features
    std::string m_linears;
    std::string m_handoff = "rows";
    Path m_path = Path::Generic;
    // Packed weights, built once by the first evaluate. The CPU plugin may call evaluate from several
    // streams at once on the same node, hence call_once; evaluate itself keeps no other mutable state.
    mutable std::once_flag m_once;
    mutable std::shared_ptr<const Prepared> m_prepared;
};

}  // namespace pofa
