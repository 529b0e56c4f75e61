"""Plain-text tables for the terminal (presentation only: no computation happens here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Iterable[int] = ()) -> str:
    """Aligned columns; ``right`` lists the column indexes to right-align (numbers)."""
    right = set(right)
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def layer_rows(layers: list[dict[str, Any]]) -> list[list[Any]]:
    return [[row["name"], "x".join(map(str, row["shape"])), row["dtype"], pct(row["sparsity"]),
             "yes" if row["eligible"] else "no"] for row in layers]


def layers_text(layers: list[dict[str, Any]], totals: dict[str, Any], *, eligible_header: str = "eligible") -> str:
    table = format_table(["layer", "shape", "dtype", "zeros", eligible_header], layer_rows(layers), right=(3,))
    return (f"{table}\n\n{totals['layers']} layers, {pct(totals['sparsity'])} zeros overall; "
            f"{totals['eligible_layers']} eligible for CPU sparse decompression "
            f"({pct(totals['eligible_sparsity'])} zeros among them)")


def _runs_in(report: dict[str, Any]) -> str:
    precision = report.get("runtime_precision")
    if not precision:
        return ""
    if report["int8"]:
        return f"; other ops run {precision} on this CPU (plugin default; pin it in runtime_config.json)"
    return f"; runs {precision} (INFERENCE_PRECISION_HINT in runtime_config.json)"


def conversion_summary(report: dict[str, Any], out: Path) -> str:
    z = report["zero_check"]
    status = report["sparse_status"]
    lines = [
        f"converted {report['source']} ({report['model_type']}, {report['task']}) -> {out}",
        f"  precision     {'INT8 (NNCF, symmetric per-channel weights)' if report['int8'] else 'FP32'}"
        + _runs_in(report),
    ]
    if report.get("synthetic"):
        lines.append("  checkpoint    SYNTHETIC (random weights): speed figures only, accuracy is meaningless")
    lines += [
        f"  zero check    {z['layers_checked']} layers: {z['zeros_before']:,} zeros before, {z['zeros_after']:,} "
        f"after, {z['zeros_lost']} lost, {z['new_zeros_from_rounding']:,} new from rounding",
        f"  sparse rate   {report['sparse_rate'] if report['sparse_rate'] is not None else 'off'} "
        f"(written to {out / 'runtime_config.json'})",
        *([f"  decided by    {report['sparse_decision']['reason']}"] if report.get("sparse_decision") else []),
        f"  this CPU      {status['summary']}",
        *_sparse_kernel_lines(report.get("sparse_kernel") or {}, out),
    ]
    for name, stats in report["outputs_vs_pytorch"].items():
        if isinstance(stats, dict):
            agree = f", top-1 agreement {pct(stats['top1_agreement'])}" if "top1_agreement" in stats else ""
            n = report["outputs_vs_pytorch"]["samples"]
            lines.append(f"  vs PyTorch    {name}: max |diff| {stats['max_abs_diff']:.4g}, cosine "
                         f"{stats['mean_cosine']:.5f}{agree} on {n} held-back samples")
    lines.append(f"  report        {out / 'pofa_report.json'}")
    lines.append(f"  deploy        on the deployment machine run pofa-deploy tune {out} (the decision above is "
                 "this machine's)")
    return "\n".join(lines)


def _sparse_kernel_lines(info: dict[str, Any], out: Path) -> list[str]:
    if not info.get("written"):
        return [f"  sparse kernel not written: {info['reason']}"] if info.get("reason") else []
    agree = info.get("vs_standard_int8", {})
    shown = "; ".join(f"{name}: max |diff| {v['max_abs_diff']:.4g}" + (
        f", top-1 agreement {pct(v['top1_agreement'])}" if "top1_agreement" in v else "")
        for name, v in agree.items() if isinstance(v, dict))
    gelu = sum(1 for layer in info["layers"] if layer.get("activation", "none") != "none")
    u8 = sum(1 for layer in info["layers"] if layer.get("u8_output_to"))
    parts = [f"{gelu} with their GELU"] * bool(gelu) + [f"{u8} handing u8 codes to the next"] * bool(u8)
    fused = f" ({', '.join(parts)})" if parts else ""
    return [f"  sparse kernel {out / info['file']}: {len(info['layers'])} Linears run SparseFullyConnected{fused}, "
            f"{info['proof']['codes_checked']:,} i8 codes proven equal to the standard IR's",
            *([f"  vs INT8 IR    {shown} on {agree['samples']} held-back samples"] if shown else [])]
