"""SparseFullyConnected: the C++ op against a numpy reference (both kernels, 1 and 2 threads, odd
shapes, dynamic shapes), the graph rewrite of real NNCF INT8 IRs against the standard IR, and the
check that refuses a sparse IR whose packed weights differ from the standard IR's."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pofa_deploy import extension as ext
from pofa_deploy import sparse_kernel as sk
from pofa_deploy.checkpoint import Task
from pofa_deploy.errors import InputError, SparsityLostError, VerificationError

HAS_VNNI = "avx512_vnni" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
PATHS = ["generic", pytest.param("vnni", marks=pytest.mark.skipif(not HAS_VNNI, reason="CPU has no AVX-512 VNNI"))]


@pytest.fixture(scope="session")
def ext_lib() -> Path:
    """The built extension; builds it when missing or stale (a fresh clone after install.sh has it)."""
    return ext.build_extension()


def _core(lib: Path):
    import openvino as ov

    core = ov.Core()
    core.add_extension(str(lib))
    return core


def _refused_when_read(lib: Path, tmp_path: Path, inputs, attrs: dict, params, match: str, exc=Exception):
    """A SparseFullyConnected built from `inputs` with `attrs`, saved in a model whose parameters are
    `params`: reading that model back must fail with `match` (the op's own validation)."""
    import openvino as ov

    bad = sk.op_class()(inputs, attrs)
    xml = tmp_path / "bad.xml"
    ov.save_model(ov.Model(list(bad.outputs()), list(params)), str(xml), compress_to_fp16=False)
    with pytest.raises(exc, match=match):
        _core(lib).read_model(str(xml))


def _reference(x: np.ndarray, codes: np.ndarray, scale: np.ndarray, bias: np.ndarray, fq: np.ndarray,
               levels: int) -> np.ndarray:
    """FakeQuantize -> dequantised i8 MatMul -> bias, in float64, quantising like the op (float32 fma,
    round half to even)."""
    il, ih, ol, oh = (float(v) for v in fq)
    sc = np.float32((levels - 1) / (ih - il))
    sh = np.float32(-il * (levels - 1) / (ih - il))
    v = (x.astype(np.float64) * np.float64(sc) + np.float64(sh)).astype(np.float32)  # = fmaf
    q = np.rint(np.clip(v, 0, levels - 1)).astype(np.float64)
    xd = q * ((oh - ol) / (levels - 1)) + ol
    return (xd @ codes.T.astype(np.float64)) * scale.astype(np.float64) + bias.astype(np.float64)


def _gelu_reference(y: np.ndarray, post: np.ndarray) -> np.ndarray:
    """gelu(y) * post with the exact erf, in float64."""
    from math import erf

    return 0.5 * y * (1.0 + np.vectorize(erf)(y / np.sqrt(2.0))) * post.astype(np.float64)


def _layer(rng: np.random.Generator, k: int, n: int, sparsity: float, fq=(-1.3, 1.1, -1.3, 1.1), levels=256,
           post: np.ndarray | None = None, **extra_attrs):
    """One op on a random layer (``extra_attrs``: more op attributes, e.g. out_splits): the model, with
    every output of the op, and the layer's arrays."""
    import openvino as ov
    import openvino.opset13 as ops

    codes = rng.integers(-127, 128, (n, k)).astype(np.int8)
    codes[rng.random((n, k)) < sparsity] = 0
    codes[min(3, n - 1)] = 0  # an all-zero row
    scale = (rng.random(n) * 0.01 + 0.001).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    fqa = np.array(fq, dtype=np.float32)
    x = ops.parameter([-1, -1, k], ov.Type.f32, name="x")
    extra = () if post is None else (post,)
    consts = [ops.constant(a).output(0) for a in (*sk.to_csr(codes), scale, bias, fqa, *extra)]
    attrs: dict = {"in_features": k, "out_features": n, "levels": levels, **extra_attrs}
    if post is not None:
        attrs["activation"] = "gelu_erf"
    node = sk.op_class()([x.output(0), *consts], attrs)
    return ov.Model(list(node.outputs()), [x]), (codes, scale, bias, fqa, levels)


def _roundtrip(model, lib: Path, tmp_path: Path, threads: int):
    import openvino as ov

    xml = tmp_path / "sparse.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    core = _core(lib)
    return core.compile_model(core.read_model(str(xml)), "CPU", {"INFERENCE_NUM_THREADS": threads})


def _on_both_kernels(model, x: np.ndarray, lib: Path, tmp_path: Path, monkeypatch) -> dict[str, np.ndarray]:
    """The model's output for x on the portable and on the VNNI kernel (2 threads)."""
    out = {}
    for path in ("generic", "vnni"):
        monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
        out[path] = _roundtrip(model, lib, tmp_path, 2)(x)[0]
    return out


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k,n,sparsity", [(100, 70, 0.5), (100, 70, 0.9), (257, 33, 0.99), (64, 128, 0.9),
                                          (1100, 40, 0.8)])  # 1100: three K blocks of the VNNI path, a K tail
def test_op_matches_numpy_reference(ext_lib, tmp_path, monkeypatch, path, threads, k, n, sparsity):
    monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
    rng = np.random.default_rng(k * n + threads)
    model, (codes, scale, bias, fq, levels) = _layer(rng, k, n, sparsity)
    compiled = _roundtrip(model, ext_lib, tmp_path, threads)
    # one compiled model, many shapes (dynamic batch and tokens): M = 1, 7, 16, 2 x 11, 3 x 11, 130, 2 x 65
    # (the VNNI path's tiles of 1, 2 and 4 groups of 16 tokens, of two 64-token chunks, and several tiles)
    for shape in [(1, 1), (1, 7), (1, 16), (2, 11), (3, 11), (1, 130), (2, 65)]:
        x = (rng.standard_normal((*shape, k)) * 0.9).astype(np.float32)
        x.flat[:5] = [5.0, -5.0, 1.1, -1.3, 0.0]  # clamped both sides, exactly at the range ends
        y = compiled(x)[0]
        ref = _reference(x, codes, scale, bias, fq, levels)
        assert y.shape == (*shape, n)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()) + 1e-6)


def _stacked(rng: np.random.Generator, k: int, widths: list[int], **attrs):
    """One op computing several Linears of one input (out_splits), 90% zeros."""
    return _layer(rng, k, sum(widths), 0.9, out_splits=widths, **attrs)


@pytest.mark.parametrize("path", PATHS)
def test_several_outputs_match_numpy_reference(ext_lib, tmp_path, monkeypatch, path):
    """out_splits: output i is rows [sum(widths[:i]), + widths[i]) of the stacked Linear. Widths that are
    not multiples of the 128-row blocks, one shorter than a 16-row epilogue group, and token counts of
    one, several and 8+ 128-token tiles."""
    monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
    rng = np.random.default_rng(21)
    widths = [70, 130, 5]
    model, (codes, scale, bias, fq, levels) = _stacked(rng, 100, widths, linears="a;b;c")
    compiled = _roundtrip(model, ext_lib, tmp_path, 2)
    starts = np.cumsum([0, *widths])
    for shape in [(1, 1), (2, 65), (3, 300)]:
        x = (rng.standard_normal((*shape, 100)) * 0.9).astype(np.float32)
        ref = _reference(x, codes, scale, bias, fq, levels)
        outs = compiled(x)
        assert len(outs) == 3
        for i, (a, b) in enumerate(itertools.pairwise(starts)):
            y = outs[i]
            assert y.shape == (*shape, widths[i])
            np.testing.assert_allclose(y, ref[..., a:b], rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()) + 1e-6)


@pytest.mark.skipif(not HAS_VNNI, reason="CPU has no AVX-512 VNNI")
def test_several_outputs_paths_agree_bit_for_bit(ext_lib, tmp_path, monkeypatch):
    rng = np.random.default_rng(22)
    model, _ = _stacked(rng, 64, [64, 200, 17], linears="a;b;c")
    x = rng.standard_normal((2, 150, 64)).astype(np.float32)
    outs = {}
    for path in ("generic", "vnni"):
        monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
        outs[path] = list(_roundtrip(model, ext_lib, tmp_path, 2)(x).values())
    for a, b in zip(outs["generic"], outs["vnni"], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("widths", "attrs", "message"), [
    ([60, 40], {}, "out_splits must sum to out_features"),
    ([100, 0, 10], {}, "out_splits must be positive"),
    ([50, 60], {"output_levels": 256}, "several outputs"),
])
def test_bad_out_splits_fail_when_read(ext_lib, tmp_path, widths, attrs, message):
    import openvino as ov

    model, _ = _stacked(np.random.default_rng(1), 32, [110], **attrs)
    op = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    extra = [ov.op.Constant(np.array([-1, 1, -1, 1], np.float32)).output(0)] if attrs else []
    _refused_when_read(ext_lib, tmp_path, [*(op.input_value(i) for i in range(op.get_input_size())), *extra],
                       {**op.get_attributes(), "out_splits": widths}, model.get_parameters(), message, RuntimeError)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("k,n", [(100, 70), (64, 200), (257, 33)])
def test_fused_gelu_matches_exact_erf(ext_lib, tmp_path, monkeypatch, path, k, n):
    """activation gelu_erf: y = gelu(linear) * post, against float64 erf; the biases are spread so that
    outputs cover both GELU tails (large negatives ~0, large positives ~y) and the middle."""
    monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
    rng = np.random.default_rng(k + n)
    post = (rng.random(n) * 2 + 0.1).astype(np.float32)
    model, (codes, scale, bias, fq, levels) = _layer(rng, k, n, 0.9, post=post)
    compiled = _roundtrip(model, ext_lib, tmp_path, 2)
    for shape in [(1, 1), (2, 37), (1, 130)]:
        x = (rng.standard_normal((*shape, k)) * 0.9).astype(np.float32)
        ref = _gelu_reference(_reference(x, codes, scale, bias, fq, levels), post)
        y = compiled(x)[0]
        assert y.shape == (*shape, n)
        np.testing.assert_allclose(y, ref, rtol=2e-5, atol=2e-6 * float(np.abs(ref).max()) + 1e-6)


def test_gelu_erf_table_is_what_its_generator_makes():
    """kernel.hpp's erf table is erf_table.py's output (regenerate it there, not by hand), within 7e-8
    of erf in float32 with fma; a table with one wrong coefficient fails both checks."""
    from pofa_deploy.ext import erf_table

    header = (Path(ext.__file__).parent / "ext" / "kernel.hpp").read_text()
    table = erf_table.table()
    assert erf_table.cpp(table) in header
    assert erf_table.max_error(table) < 7e-8
    broken = table.copy()
    broken[2, 5] *= 1.001
    assert erf_table.cpp(broken) not in header
    assert erf_table.max_error(broken) > 1e-6


@pytest.mark.skipif(not HAS_VNNI, reason="CPU has no AVX-512 VNNI")
def test_fused_gelu_paths_agree_bit_for_bit_over_the_whole_range(ext_lib, tmp_path, monkeypatch):
    """Biases from -12 to 12 (and one of -1e30) walk the GELU through its tails, zero and the exp
    clamp; both kernels must give identical floats, all finite."""
    import openvino as ov

    rng = np.random.default_rng(9)
    model, _ = _layer(rng, 64, 200, 0.9, post=np.ones(200, np.float32))
    wide = np.linspace(-12, 12, 200).astype(np.float32)
    wide[0] = -1e30
    op = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    op.input(5).replace_source_output(ov.op.Constant(wide).output(0))
    x = rng.standard_normal((2, 33, 64)).astype(np.float32)
    out = _on_both_kernels(model, x, ext_lib, tmp_path, monkeypatch)
    assert np.array_equal(out["generic"], out["vnni"])
    assert np.all(np.isfinite(out["vnni"])) and out["vnni"][..., 0].max() == 0.0  # gelu(-1e30) = -0, not NaN


def _chain(rng: np.random.Generator, k: int, n: int, n2: int, gelu: bool, handoff: str | None):
    """x -> op A (K=k, N=n, GELU optional) -> op B (K=n, N=n2); with ``handoff`` ("rows" or "panel")
    A writes B's u8 codes in that layout."""
    import openvino as ov
    import openvino.opset13 as ops

    def weights(kk: int, nn: int):
        codes = rng.integers(-127, 128, (nn, kk)).astype(np.int8)
        codes[rng.random((nn, kk)) < 0.9] = 0
        return [*sk.to_csr(codes), (rng.random(nn) * 0.02 + 0.001).astype(np.float32),
                rng.standard_normal(nn).astype(np.float32)]

    fq_a, fq_b = np.array([-1.3, 1.1, -1.3, 1.1], np.float32), np.array([-0.2, 2.5, -0.2, 2.5], np.float32)
    wa, wb = weights(k, n), weights(n, n2)
    post = (rng.random(n) + 0.5).astype(np.float32)
    x = ops.parameter([-1, -1, k], ov.Type.f32, name="x")
    a_in = [x.output(0), *(ops.constant(v).output(0) for v in [*wa, fq_a, *([post] if gelu else []),
                                                              *([fq_b] if handoff else [])])]
    layout = {"handoff": handoff} if handoff else {}
    a = sk.op_class()(a_in, {"in_features": k, "out_features": n, "levels": 256, **layout,
                             "activation": "gelu_erf" if gelu else "none", "output_levels": 256 if handoff else 0})
    b_in = [a.output(0), *(ops.constant(v).output(0) for v in [*wb, fq_b]),
            *([x.output(0)] if handoff == "panel" else [])]
    b = sk.op_class()(b_in, {"in_features": n, "out_features": n2, "levels": 256, "input_u8": bool(handoff), **layout})
    return ov.Model([b.output(0)], [x])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("gelu", [False, True])
def test_u8_handoff_is_bit_identical_to_f32(ext_lib, tmp_path, monkeypatch, path, gelu):
    """An op writing its consumer's u8 codes, row-major or already packed (panel), gives exactly the
    floats of the same two ops passing f32 (odd widths: the u8 rows end in masked stores; token counts
    that leave partial 16-token groups and 64-token chunks, several tiles)."""
    monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
    out = {}
    for handoff in (None, "rows", "panel"):
        model = _chain(np.random.default_rng(21), 75, 69, 33, gelu, handoff)
        (tmp_path / str(handoff)).mkdir()
        out[handoff] = _roundtrip(model, ext_lib, tmp_path / str(handoff), 2)
    x_rng = np.random.default_rng(4)
    for shape in [(1, 1), (2, 33), (1, 130), (3, 100)]:
        x = x_rng.standard_normal((*shape, 75)).astype(np.float32)
        y = out[None](x)[0]
        assert y.shape == (*shape, 33)
        for handoff in ("rows", "panel"):
            np.testing.assert_array_equal(out[handoff](x)[0], y, err_msg=handoff)


def test_u8_handoff_attributes_are_checked(ext_lib, tmp_path):
    model = _chain(np.random.default_rng(5), 32, 16, 8, False, "rows")
    a = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    _refused_when_read(ext_lib, tmp_path, [i.get_source_output() for i in a.inputs()],
                       {"in_features": 32, "out_features": 16, "levels": 256, "output_levels": 300},
                       model.get_parameters(), r"output_levels must be 0 \(f32 output\) or in \[2, 256\]")
    # a consumer declared input_u8 but fed f32
    model = _chain(np.random.default_rng(5), 32, 16, 8, False, None)
    b = [op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE][1]
    _refused_when_read(ext_lib, tmp_path, [i.get_source_output() for i in b.inputs()],
                       {"in_features": 16, "out_features": 8, "levels": 256, "input_u8": True},
                       model.get_parameters(), "input 0 must be u8")


@pytest.mark.parametrize(("layouts", "message"), [
    (("bogus", "bogus"), "handoff must be rows or panel"),
    (("rows", "panel"), "its producer writes 'rows' codes, this op reads 'panel'"),
    (("panel", "rows"), "its producer writes 'panel' codes, this op reads 'rows'"),  # same width: only this check
])
def test_handoff_layouts_are_checked(ext_lib, tmp_path, layouts, message):
    """Both ops of a hand-off must agree on its layout: a mismatch fails read_model with its reason."""
    import openvino as ov

    model = _chain(np.random.default_rng(5), 32, 16, 8, False, "panel")
    a, b = (op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    a2 = sk.op_class()([i.get_source_output() for i in a.inputs()], {**a.get_attributes(), "handoff": layouts[0]})
    b_in = [a2.output(0), *(i.get_source_output() for i in list(b.inputs())[1:7])]
    b2 = sk.op_class()(b_in + ([b.input_value(7)] if layouts[1] == "panel" else []),
                       {**b.get_attributes(), "handoff": layouts[1]})
    xml = tmp_path / "bad.xml"
    ov.save_model(ov.Model([b2.output(0)], model.get_parameters()), str(xml), compress_to_fp16=False)
    with pytest.raises(Exception, match=message):
        _core(ext_lib).compile_model(str(xml), "CPU")


def test_panel_input_shape_is_checked(ext_lib, tmp_path):
    """A panel reader fed by something else than an op (here a Parameter) still checks the panel's width."""
    import openvino as ov
    import openvino.opset13 as ops

    model = _chain(np.random.default_rng(5), 32, 17, 8, False, "panel")  # 17 rows: the panel is 17 wide
    b = [op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE][1]
    codes = ops.parameter([-1, 18], ov.Type.u8, name="codes")  # one too wide
    _refused_when_read(ext_lib, tmp_path,
                       [codes.output(0), *(b.input_value(i) for i in range(1, b.get_input_size()))],
                       b.get_attributes(), [codes, *model.get_parameters()],
                       r"input 0 \(a panel\) must be \[tokens, 17\]")


def test_panel_without_u8_is_refused(ext_lib, tmp_path):
    model, _ = _layer(np.random.default_rng(2), 32, 16, 0.9)
    op = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    _refused_when_read(ext_lib, tmp_path, [i.get_source_output() for i in op.inputs()],
                       {"in_features": 32, "out_features": 16, "levels": 256, "handoff": "panel"},
                       model.get_parameters(), "handoff panel needs a u8 input")


def test_bad_activation_fails_when_read(ext_lib, tmp_path):
    rng = np.random.default_rng(2)
    model, _ = _layer(rng, 32, 16, 0.9)
    op = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    _refused_when_read(ext_lib, tmp_path, [i.get_source_output() for i in op.inputs()],
                       {"in_features": 32, "out_features": 16, "levels": 256, "activation": "relu"},
                       model.get_parameters(), "activation must be none or gelu_erf")
    # gelu_erf without its post-scale input
    _refused_when_read(ext_lib, tmp_path, [i.get_source_output() for i in op.inputs()],
                       {"in_features": 32, "out_features": 16, "levels": 256, "activation": "gelu_erf"},
                       model.get_parameters(), "expects 8 inputs with activation gelu_erf")


@pytest.mark.parametrize("fq,levels", [((0.0, 2.0, 0.0, 2.0), 256), ((-0.5, 3.0, -0.4, 2.5), 256),
                                       ((-1.0, 1.0, -1.0, 1.0), 16)])
def test_asymmetric_and_other_fake_quantize(ext_lib, tmp_path, fq, levels):
    rng = np.random.default_rng(7)
    model, (codes, scale, bias, fqa, lv) = _layer(rng, 96, 48, 0.9, fq=fq, levels=levels)
    compiled = _roundtrip(model, ext_lib, tmp_path, 2)
    x = rng.standard_normal((2, 19, 96)).astype(np.float32)
    ref = _reference(x, codes, scale, bias, fqa, lv)
    np.testing.assert_allclose(compiled(x)[0], ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()) + 1e-6)


@pytest.mark.skipif(not HAS_VNNI, reason="CPU has no AVX-512 VNNI")
@pytest.mark.parametrize("k", [300, 1024])  # 1024: f32 rows 4 KiB apart (one L1 set for all rows of a chunk)
def test_vnni_and_portable_paths_agree_bit_for_bit(ext_lib, tmp_path, monkeypatch, k):
    rng = np.random.default_rng(3)
    model, _ = _layer(rng, k, 200, 0.9)
    x = rng.standard_normal((4, 67, k)).astype(np.float32)
    # values the quantisation must clamp the same way on both paths (the VNNI packing leaves the lower
    # clamp to its saturating packs): NaN and infinities, out of int32 range, negative ties
    x[0, :3, :8] = [np.nan, np.inf, -np.inf, 3e9, -3e9, 1e30, -1e30, -0.0]
    x[1, 5, :] = np.nan
    out = _on_both_kernels(model, x, ext_lib, tmp_path, monkeypatch)
    assert np.array_equal(out["generic"], out["vnni"])


@pytest.mark.skipif(not HAS_VNNI, reason="CPU has no AVX-512 VNNI")
@pytest.mark.parametrize("handoff", [None, "rows"])
def test_packing_at_4k_strides_matches_portable(ext_lib, tmp_path, monkeypatch, handoff):
    """The consumer of a 4096-wide output packs rows 4 KiB apart (u8 codes) or 16 KiB apart (f32), the
    strides at which a staged packing was tried (benchmarks/README.md, "Session 13"): bit for bit the
    portable path's outputs, for one 64-token chunk split over K between the threads (20 tokens), several
    chunks with a short last one (130), and values to clamp."""
    model = _chain(np.random.default_rng(8), 40, 4096, 24, False, handoff)
    x_rng = np.random.default_rng(9)
    for shape in [(1, 20), (1, 130)]:
        x = x_rng.standard_normal((*shape, 40)).astype(np.float32)
        x[0, :2, :6] = [np.nan, np.inf, -np.inf, 3e9, -3e9, 1e30]
        out = _on_both_kernels(model, x, ext_lib, tmp_path, monkeypatch)
        assert np.array_equal(out["generic"], out["vnni"], equal_nan=True)


def _at_offset(x: np.ndarray, offset: int) -> np.ndarray:
    """A copy of x whose data starts `offset` bytes past a 64-byte boundary."""
    raw = np.empty(x.nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    y = raw[start:start + x.nbytes].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


@pytest.mark.skipif(not HAS_VNNI, reason="CPU has no AVX-512 VNNI")
@pytest.mark.parametrize("k", [32, 1024, 40])  # 40: not a multiple of 16, rows misaligned unlike each other
def test_misaligned_input_packs_like_aligned(ext_lib, tmp_path, monkeypatch, k):
    """The VNNI packing starts with a short step up to the rows' first cache-line boundary when the f32
    input is not 64-byte aligned (kernel_vnni.cpp, vnni_quantize): outputs bit for bit the portable
    path's at every offset, including one not a multiple of 4 (no head step), for one chunk split over K
    between the threads (20 tokens) and several chunks with a short last one (130)."""
    import openvino as ov

    model, _ = _layer(np.random.default_rng(11), k, 48, 0.8)
    requests = {}
    for path in ("generic", "vnni"):
        monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
        requests[path] = _roundtrip(model, ext_lib, tmp_path, 2).create_infer_request()
    rng = np.random.default_rng(12)
    for tokens, offset in itertools.product((20, 130), (0, 4, 16, 36, 60, 2)):
        # a new input each time: a position the packing skipped would keep the last call's codes
        shifted = _at_offset(rng.standard_normal((1, tokens, k)).astype(np.float32), offset)
        tensor = ov.Tensor(shifted, shared_memory=True)
        assert tensor.data.ctypes.data % 64 == offset  # the op reads the misaligned buffer itself
        out = {}
        for path, request in requests.items():
            # the input's shape is dynamic, so the plugin re-validates the op, which reads the variable
            # again, at every inference
            monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
            request.set_input_tensor(tensor)
            request.infer()
            out[path] = request.get_output_tensor().data.copy()
        assert np.array_equal(out["generic"], out["vnni"]), (offset, tokens)


@pytest.mark.parametrize("path", PATHS)
def test_concurrent_streams_share_one_op_safely(ext_lib, tmp_path, monkeypatch, path):
    """Two streams and four async requests on one compiled model: the weights are packed once
    (call_once) and every request gets its own correct result (per-thread scratch, no shared state)."""
    import openvino as ov

    monkeypatch.setenv("POFA_SPARSE_KERNEL", path)
    rng = np.random.default_rng(11)
    model, (codes, scale, bias, fq, levels) = _layer(rng, 200, 150, 0.9)
    xml = tmp_path / "sparse.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    core = _core(ext_lib)
    compiled = core.compile_model(core.read_model(str(xml)), "CPU",
                                  {"NUM_STREAMS": 2, "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "THROUGHPUT"})
    queue = ov.AsyncInferQueue(compiled, 4)
    inputs = [rng.standard_normal((1, int(m), 200)).astype(np.float32) for m in rng.integers(1, 150, 24)]
    results: dict[int, np.ndarray] = {}
    queue.set_callback(lambda request, i: results.__setitem__(i, request.get_output_tensor().data.copy()))
    for i, x in enumerate(inputs):
        queue.start_async({0: x}, i)
    queue.wait_all()
    for i, x in enumerate(inputs):
        ref = _reference(x, codes, scale, bias, fq, levels)
        np.testing.assert_allclose(results[i], ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()) + 1e-6)


def test_only_the_vnni_translation_unit_has_avx512_code(ext_lib):
    """The library must load and run (portable path) on CPUs without AVX-512: AVX-512 instructions may
    appear only in the functions of kernel_vnni.cpp, which run after the CPUID check."""
    import shutil

    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump not installed")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", str(ext_lib)], capture_output=True,
                          text=True, check=True).stdout
    function, offenders = "", set()
    for line in text.splitlines():
        if line.endswith(">:"):
            function = line
        elif "zmm" in line or "{1to" in line or "%k1" in line:
            offenders.add(function)
    allowed = ("pofa::vnni_quantize", "pofa::vnni_store", "pofa::vnni_accumulate", "pofa::vnni_row_block",
               "pofa::(anonymous namespace)::accumulate<", "pofa::(anonymous namespace)::records<",
               "pofa::(anonymous namespace)::gelu16", "pofa::vnni_pack_u8", "pofa::(anonymous namespace)::pack_panel<",
               "pofa::(anonymous namespace)::quantize16")
    assert offenders and all(any(a in f for a in allowed) for f in offenders), sorted(offenders)


def test_rank2_input_and_bad_kernel_env(ext_lib, tmp_path, monkeypatch):
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(5)
    codes = (rng.integers(-5, 6, (10, 20)) * (rng.random((10, 20)) < 0.3)).astype(np.int8)
    x = ops.parameter([-1, 20], ov.Type.f32)
    consts = [ops.constant(a).output(0) for a in (*sk.to_csr(codes), np.ones(10, np.float32),
                                                  np.zeros(10, np.float32), np.array([-1, 1, -1, 1], np.float32))]
    node = sk.op_class()([x.output(0), *consts], {"in_features": 20, "out_features": 10, "levels": 256})
    compiled = _roundtrip(ov.Model([node.output(0)], [x]), ext_lib, tmp_path, 1)
    xs = rng.standard_normal((5, 20)).astype(np.float32)
    ref = _reference(xs, codes, np.ones(10), np.zeros(10), np.array([-1, 1, -1, 1]), 256)
    np.testing.assert_allclose(compiled(xs)[0], ref, rtol=1e-5, atol=1e-5)
    # the kernel is chosen when the model is read / compiled, so a bad value fails there, loudly
    monkeypatch.setenv("POFA_SPARSE_KERNEL", "fastest")
    with pytest.raises(Exception, match="POFA_SPARSE_KERNEL must be auto, generic or vnni"):
        _roundtrip(ov.Model([node.output(0)], [x]), ext_lib, tmp_path, 1)
    # forcing the VNNI kernel: it runs where the CPU has AVX-512 VNNI, and is refused by name elsewhere
    monkeypatch.setenv("POFA_SPARSE_KERNEL", "vnni")
    if HAS_VNNI:
        forced = _roundtrip(ov.Model([node.output(0)], [x]), ext_lib, tmp_path, 1)
        np.testing.assert_allclose(forced(xs)[0], ref, rtol=1e-5, atol=1e-5)
    else:
        with pytest.raises(Exception, match="POFA_SPARSE_KERNEL=vnni but this CPU has no AVX-512 VNNI"):
            _roundtrip(ov.Model([node.output(0)], [x]), ext_lib, tmp_path, 1)


def test_malformed_compressed_weights_fail_when_read(ext_lib, tmp_path):
    """The C++ op checks the CSR when the IR is read (not first at inference, where the CPU plugin does
    not reliably report an exception)."""
    import openvino as ov
    import openvino.opset13 as ops

    codes = np.array([[0, 3, 0, -1], [0, 0, 0, 0], [7, 0, 0, 2]], dtype=np.int8)
    values, indices, row_ptr = sk.to_csr(codes)
    x = ops.parameter([-1, 4], ov.Type.f32)
    bad = {"out of range": (values, np.array([1, 4, 0, 3], np.int32), row_ptr),
           "not strictly increasing": (values, np.array([3, 1, 0, 3], np.int32), row_ptr),
           "row_ptr": (values, indices, np.array([0, 2, 2, 3], np.int32))}
    core = _core(ext_lib)
    for i, (why, (v, idx, ptr)) in enumerate(bad.items()):
        consts = [ops.constant(a).output(0) for a in (v, idx, ptr, np.ones(3, np.float32), np.zeros(3, np.float32),
                                                      np.array([-1, 1, -1, 1], np.float32))]
        node = sk.op_class()([x.output(0), *consts], {"in_features": 4, "out_features": 3, "levels": 256})
        xml = tmp_path / f"bad{i}.xml"
        ov.save_model(ov.Model([node.output(0)], [x]), str(xml), compress_to_fp16=False)
        with pytest.raises(Exception, match=why):
            core.read_model(str(xml))


def test_csr_roundtrip_and_malformed_csr():
    codes = np.array([[0, 3, 0, -1], [0, 0, 0, 0], [7, 0, 0, 2]], dtype=np.int8)
    values, indices, row_ptr = sk.to_csr(codes)
    assert values.tolist() == [3, -1, 7, 2] and indices.tolist() == [1, 3, 0, 3] and row_ptr.tolist() == [0, 2, 2, 4]
    assert np.array_equal(sk.from_csr(values, indices, row_ptr, codes.shape), codes)
    with pytest.raises(VerificationError, match="out of range"):
        sk.from_csr(values, np.array([1, 4, 0, 3], np.int32), row_ptr, codes.shape)
    with pytest.raises(VerificationError, match="repeated or unsorted"):
        sk.from_csr(values, np.array([3, 1, 0, 3], np.int32), row_ptr, codes.shape)
    with pytest.raises(VerificationError, match="row pointers"):
        sk.from_csr(values, indices, np.array([0, 2, 2, 3], np.int32), codes.shape)


# --------------------------------------------------------------------------------- full tiny models

FAST = {"samples": 8, "holdout": 4, "seq_len": 32}


@pytest.fixture(scope="session")
def int8_ir(tiny_checkpoint, tmp_path_factory):
    """``int8_ir(arch, task)`` -> an INT8 conversion folder (cached per session)."""
    from pofa_deploy.convert import ConvertOptions, convert

    cache: dict[tuple[str, str], Path] = {}

    def make(arch: str = "distilbert", task: Task = Task.TEXT_CLASSIFICATION) -> Path:
        if (arch, task.value) not in cache:
            out = tmp_path_factory.mktemp(f"int8-{arch}-{task.value}") / "out"
            convert(ConvertOptions(model=str(tiny_checkpoint(arch, task)), output=out, int8=True, **FAST))
            cache[(arch, task.value)] = out
        return cache[(arch, task.value)]

    return make


def _feeds(model, lengths=(16, 37), batch=3, seed=0):
    rng = np.random.default_rng(seed)
    names = [i.get_any_name() for i in model.inputs]
    for length in lengths:
        ids = rng.integers(5, 1000, (batch, length))
        mask = np.ones((batch, length), np.int64)
        mask[1, length // 2:] = 0  # a padded sequence in the batch
        ids[1, length // 2:] = 0
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        yield {k: v for k, v in feed.items() if k in names}


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
@pytest.mark.parametrize("task", list(Task))
def test_rewritten_tiny_model_matches_standard_int8(ext_lib, int8_ir, tmp_path, arch, task):
    import openvino as ov

    out = int8_ir(arch, task)
    core = _core(ext_lib)
    standard = core.read_model(str(out / "openvino_model.xml"))
    assert sk.should_rewrite("auto", standard) and not sk.should_rewrite("off", standard)
    result = sk.rewrite(standard)
    assert result.replaced == 12  # every encoder Linear of the 2-layer tiny models (q k v out lin1 lin2)
    assert all(".layer." in layer["name"] and layer["sparsity"] >= 0.7 for layer in result.layers)
    # the GELU after each layer's first FFN Linear runs inside the op, which hands u8 codes to the second
    assert sum(layer["activation"] == "gelu_erf" for layer in result.layers) == 2
    assert sum(bool(layer["u8_output_to"]) for layer in result.layers) == 2
    assert sum(layer["u8_input"] for layer in result.layers) == 2
    # q, k and v read one FakeQuantize: one op per layer with three outputs
    assert sorted(layer["op_output"] for layer in result.layers) == [0] * 8 + [1] * 2 + [2] * 2
    assert {layer["op"].split(".attention.")[-1] for layer in result.layers if layer["op_output"]} == \
        {"q_lin/aten::linear/MatMul" if arch == "distilbert" else "self.query/aten::linear/MatMul"}
    xml = tmp_path / f"{sk.SPARSE_IR_NAME}.xml"
    ov.save_model(result.model, str(xml), compress_to_fp16=False)
    report = sk.verify(xml, out / "openvino_model.xml")
    assert report["layers"] == 12
    sparse = core.read_model(str(xml))
    assert sum(op.get_type_name() == sk.OP_TYPE for op in sparse.get_ordered_ops()) == 8
    # the same Linears one op each compute the same floats
    ov.save_model(sk.rewrite(standard, shared_input=False).model, str(tmp_path / "separate.xml"),
                  compress_to_fp16=False)
    separate = core.read_model(str(tmp_path / "separate.xml"))
    assert sum(op.get_type_name() == sk.OP_TYPE for op in separate.get_ordered_ops()) == 12
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    for feed in _feeds(standard, lengths=(37,)):
        for ya, yb in zip(core.compile_model(sparse, "CPU", f32)(feed).values(),
                          core.compile_model(separate, "CPU", f32)(feed).values(), strict=True):
            np.testing.assert_array_equal(ya, yb)
    gelus = [sum(op.get_type_name() == "Gelu" for op in m.get_ordered_ops()) for m in (standard, sparse)]
    assert gelus[1] == gelus[0] - 2  # (a fill-mask head keeps its own GELU: it is no sparse Linear's)
    assert [o.get_any_name() for o in sparse.outputs] == [o.get_any_name() for o in standard.outputs]
    # f32 for the non-quantised ops isolates the op (tight); the plugin default (bf16 on CPUs with
    # AVX512_BF16/AMX) is what users run (looser: bf16 rounding around the op differs). Each compiled
    # model runs two sequence lengths (dynamic shapes), batch 3 with a padded row.
    for config, rel_tol in (({"INFERENCE_PRECISION_HINT": "f32"}, 1e-3), ({}, 0.03)):
        a, b = core.compile_model(standard, "CPU", config), core.compile_model(sparse, "CPU", config)
        for feed in _feeds(standard):
            ra, rb = a(feed), b(feed)
            for i, name in enumerate(o.get_any_name() for o in standard.outputs):
                ya, yb = ra[i], rb[i]
                assert ya.shape == yb.shape
                scale = float(np.abs(ya).max()) + 1e-6
                assert float(np.abs(ya - yb).max()) <= rel_tol * scale, (name, config)
                top_a, top_b = ya.reshape(-1, ya.shape[-1]).argmax(-1), yb.reshape(-1, yb.shape[-1]).argmax(-1)
                assert float(np.mean(top_a == top_b)) >= 0.95, (name, config)


@pytest.fixture(scope="session")
def odd_dims_checkpoint(tmp_path_factory):
    """``odd_dims_checkpoint(arch)``: a tiny 90%-sparse checkpoint whose hidden (72) and intermediate
    (200) sizes are not multiples of 64 (the conftest models' are), built with synth's helpers."""
    from pofa_deploy.synth import Arch, build_model, make_config, save_tokenizer, vocabulary

    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            tiny = Arch.TINY_DISTILBERT if arch == "distilbert" else Arch.TINY_BERT
            cfg = make_config(tiny, num_labels=3)
            if arch == "distilbert":
                cfg.dim, cfg.hidden_dim = 72, 200
            else:
                cfg.hidden_size, cfg.intermediate_size = 72, 200
            folder = tmp_path_factory.mktemp(f"odd-{arch}")
            build_model(cfg, Task.TEXT_CLASSIFICATION, sparsity=0.9, seed=3).save_pretrained(str(folder))
            save_tokenizer(folder, vocabulary(cfg.vocab_size), max_length=cfg.max_position_embeddings)
            cache[arch] = folder
        return cache[arch]

    return make


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
def test_odd_dims_model_matches_standard_int8(ext_lib, odd_dims_checkpoint, tmp_path, arch):
    import openvino as ov

    from pofa_deploy.convert import ConvertOptions, convert

    out = tmp_path / "out"
    convert(ConvertOptions(model=str(odd_dims_checkpoint(arch)), output=out, int8=True, **FAST))
    core = _core(ext_lib)
    standard = core.read_model(str(out / "openvino_model.xml"))
    result = sk.rewrite(standard)
    shapes = {tuple(layer["shape"]) for layer in result.layers}
    assert result.replaced == 12 and shapes == {(72, 72), (200, 72), (72, 200)}
    xml = tmp_path / f"{sk.SPARSE_IR_NAME}.xml"
    ov.save_model(result.model, str(xml), compress_to_fp16=False)
    assert sk.verify(xml, out / "openvino_model.xml")["layers"] == 12
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    a, b = core.compile_model(standard, "CPU", config), core.compile_model(core.read_model(str(xml)), "CPU", config)
    for feed in _feeds(standard, lengths=(5, 33)):
        ya, yb = a(feed)[0], b(feed)[0]
        assert float(np.abs(ya - yb).max()) <= 1e-3 * (float(np.abs(ya).max()) + 1e-6)
        assert np.array_equal(ya.argmax(-1), yb.argmax(-1))


def test_dense_model_is_not_rewritten_in_auto_mode(int8_ir, tiny_checkpoint, tmp_path):
    import openvino as ov

    from pofa_deploy.convert import ConvertOptions, convert

    out = tmp_path / "dense"
    convert(ConvertOptions(model=str(tiny_checkpoint(sparsity=0.0)), output=out, int8=True, **FAST))
    model = ov.Core().read_model(str(out / "openvino_model.xml"))
    assert sk.encoder_sparsity(model) < 0.1
    assert not sk.should_rewrite("auto", model) and sk.should_rewrite("on", model)
    assert sk.rewrite(model).replaced == 0  # on, but no layer reaches the threshold: nothing changes
    with pytest.raises(InputError, match="--sparse-kernel"):
        sk.should_rewrite("maybe", model)


def test_corrupted_packed_weights_are_refused(int8_ir, tiny_checkpoint, tmp_path):
    import openvino as ov
    from safetensors.numpy import load_file

    out = int8_ir()
    std_xml = out / "openvino_model.xml"
    result = sk.rewrite(ov.Core().read_model(str(std_xml)))
    source = load_file(str(tiny_checkpoint() / "model.safetensors"))
    xml = tmp_path / "ok.xml"
    ov.save_model(result.model, str(xml), compress_to_fp16=False)
    assert sk.verify(xml, std_xml, source)["layers"] == 12

    def corrupted(change):
        model = sk.read_sparse_model(xml)
        op = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
        port = {"values": 1, "indices": 2}[change[0]]
        const = op.input_value(port).get_node()
        data = np.array(const.get_data(), copy=True)
        change[1](data)
        op.input(port).replace_source_output(ov.op.Constant(data).output(0))
        bad = tmp_path / f"bad-{change[0]}.xml"
        ov.save_model(model, str(bad), compress_to_fp16=False)
        return bad

    # one nonzero code changed: not the standard IR's code
    def bump(d):
        d[0] = d[0] + 1 if d[0] != -1 else 1

    with pytest.raises(SparsityLostError, match="differ from the standard IR"):
        sk.verify(corrupted(("values", bump)), std_xml)
    # a nonzero moved onto a source zero (its first row's first index shifted to a zero position)
    model = sk.read_sparse_model(xml)
    first = next(op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE)
    idx = np.array(first.input_value(2).get_node().get_data())
    ptr = np.array(first.input_value(3).get_node().get_data())
    row = int(np.argmax(np.diff(ptr) > 0))
    cols = set(idx[ptr[row]:ptr[row + 1]].tolist())
    target = next(c for c in range(int(first.get_attributes()["in_features"])) if c not in cols and c < min(cols))

    def move(d):
        d[ptr[row]] = target

    bad = corrupted(("indices", move))
    with pytest.raises(SparsityLostError, match="zeros of the source"):
        sk.verify(bad, std_xml, source)
    with pytest.raises(SparsityLostError, match="at zeros"):
        sk.verify(bad, std_xml)


def test_extension_path_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setattr(ext, "LIBRARY", tmp_path / "missing.so")
    monkeypatch.delenv(ext.ENV_OVERRIDE, raising=False)
    with pytest.raises(ext.ExtensionError, match=r"not built .*pofa_deploy.extension build"):
        ext.extension_path()
    monkeypatch.setenv(ext.ENV_OVERRIDE, str(tmp_path / "nope.so"))
    with pytest.raises(ext.ExtensionError, match="POFA_SPARSE_EXT"):
        ext.extension_path()


def test_build_without_cmake_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(ext, "stale_reason", lambda: "forced")
    monkeypatch.setattr(ext, "_find_tool", lambda *names: None)
    with pytest.raises(ext.ExtensionError, match="no cmake"):
        ext.build_extension()


def test_optimum_intel_and_benchmark_app_run_the_sparse_ir(ext_lib, int8_ir, tmp_path):
    import shutil

    import openvino as ov
    from optimum.intel import OVModelForSequenceClassification
    from optimum.intel.openvino import modeling_base

    out = tmp_path / "out"
    shutil.copytree(int8_ir(), out)
    model = sk.rewrite(ov.Core().read_model(str(out / "openvino_model.xml"))).model
    ov.save_model(model, str(out / f"{sk.SPARSE_IR_NAME}.xml"), compress_to_fp16=False)
    modeling_base.core.add_extension(str(ext_lib))
    opt = OVModelForSequenceClassification.from_pretrained(out, file_name=f"{sk.SPARSE_IR_NAME}.xml")
    logits = opt(input_ids=np.array([[101, 2000, 102]]), attention_mask=np.ones((1, 3), np.int64)).logits
    assert np.asarray(logits).shape == (1, 3)
    app = Path(sys.executable).parent / "benchmark_app"
    cmd = [str(app)] if app.exists() else [sys.executable, "-m", "openvino.tools.benchmark.main"]
    run = subprocess.run([*cmd, "-m", str(out / f"{sk.SPARSE_IR_NAME}.xml"), "-extensions", str(ext_lib), "-d", "CPU",
                          "-shape", "input_ids[1,16],attention_mask[1,16]", "-niter", "2", "-hint", "latency"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


def test_fused_gelu_with_a_wrong_post_scale_is_refused(int8_ir, tmp_path):
    """verify compares a fused GELU's post-scale with the standard IR's Multiply after the Gelu."""
    import openvino as ov

    std_xml = int8_ir() / "openvino_model.xml"
    model = sk.rewrite(ov.Core().read_model(str(std_xml))).model
    op = next(op for op in model.get_ordered_ops()
              if op.get_type_name() == sk.OP_TYPE and op.get_attributes().get("activation") == "gelu_erf")
    post = np.array(op.input_value(7).get_node().get_data(), copy=True)
    post[0] *= 1.5
    op.input(7).replace_source_output(ov.op.Constant(post).output(0))
    bad = tmp_path / "bad.xml"
    ov.save_model(model, str(bad), compress_to_fp16=False)
    with pytest.raises(VerificationError, match="fused gelu_erf does not match"):
        sk.verify(bad, std_xml)
    # without fusion the same layers verify, and nothing is fused
    plain = sk.rewrite(ov.Core().read_model(str(std_xml)), fuse_gelu=False)
    assert all(layer["activation"] == "none" for layer in plain.layers)


def test_shared_input_op_with_misnamed_outputs_is_refused(int8_ir, tmp_path):
    """verify maps each output of a q/k/v op to its Linear by ``linears``: names in the wrong order
    compare k's weights with q's and are refused; a name list that does not match the outputs too."""
    import openvino as ov

    std_xml = int8_ir() / "openvino_model.xml"
    for linears, error, message in (
            (lambda names: ";".join([names[1], names[0], names[2]]), SparsityLostError, "packed i8 codes differ"),
            (lambda names: ";".join(names[:2]), VerificationError, "do not describe")):
        model = sk.rewrite(ov.Core().read_model(str(std_xml))).model
        op = next(op for op in model.get_ordered_ops()
                  if op.get_type_name() == sk.OP_TYPE and len(op.get_attributes()["out_splits"]) == 3)
        attrs = op.get_attributes()
        twin = sk.op_class()([op.input_value(i) for i in range(op.get_input_size())],
                             {**attrs, "linears": linears(attrs["linears"].split(";"))})
        twin.set_friendly_name(op.get_friendly_name())
        for i in range(3):
            for target in list(op.output(i).get_target_inputs()):
                target.replace_source_output(twin.output(i))
        bad = tmp_path / "bad.xml"
        ov.save_model(model, str(bad), compress_to_fp16=False)
        with pytest.raises(error, match=message):
            sk.verify(bad, std_xml)


def test_broken_u8_handoff_is_refused(int8_ir, tmp_path):
    """verify: an op's u8 output must use exactly the FakeQuantize of the op it feeds."""
    import openvino as ov

    std_xml = int8_ir() / "openvino_model.xml"
    model = sk.rewrite(ov.Core().read_model(str(std_xml))).model
    op = next(op for op in model.get_ordered_ops()
              if op.get_type_name() == sk.OP_TYPE and int(op.get_attributes().get("output_levels", 0)))
    last = op.get_input_size() - 1
    out_fq = np.array(op.input_value(last).get_node().get_data(), copy=True)
    out_fq[1] *= 1.01
    op.input(last).replace_source_output(ov.op.Constant(out_fq).output(0))
    bad = tmp_path / "bad.xml"
    ov.save_model(model, str(bad), compress_to_fp16=False)
    with pytest.raises(VerificationError, match="not exactly the FakeQuantize of the one op it feeds"):
        sk.verify(bad, std_xml)
    assert all(not la["u8_input"] for la in sk.rewrite(ov.Core().read_model(str(std_xml)), handoff=False).layers)


@pytest.mark.parametrize("broken", ["layout", "like"])
def test_broken_panel_handoff_is_refused(int8_ir, tmp_path, broken):
    """verify: both ops of a panel hand-off use that layout, and the reader's shape input is its
    producer's input."""
    import openvino as ov

    std_xml = int8_ir() / "openvino_model.xml"
    model = sk.rewrite(ov.Core().read_model(str(std_xml))).model
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() == sk.OP_TYPE]
    reader = next(op for op in ops if op.get_attributes().get("input_u8"))
    producer = reader.input_value(0).get_node()
    assert reader.get_attributes()["handoff"] == producer.get_attributes()["handoff"] == "panel"
    if broken == "layout":
        node = sk.op_class()([i.get_source_output() for i in producer.inputs()],
                             {**producer.get_attributes(), "handoff": "rows"})
        node.set_friendly_name(producer.get_friendly_name())
        reader.input(0).replace_source_output(node.output(0))
        message = "not exactly the FakeQuantize of the one op it feeds"
    else:
        reader.input(reader.get_input_size() - 1).replace_source_output(ops[0].input_value(0))
        message = "its last input is not its producer's input"
    bad = tmp_path / "bad.xml"
    ov.save_model(model, str(bad), compress_to_fp16=False)
    with pytest.raises(VerificationError, match=message):
        sk.verify(bad, std_xml)
