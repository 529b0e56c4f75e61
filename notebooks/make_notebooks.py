"""Write the notebooks from the cells below (committed without outputs; re-run this after editing).

    python notebooks/make_notebooks.py
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """import os
from pathlib import Path

# POFA_NOTEBOOK_SMALL=1 (set by the test suite) runs everything on tiny models in seconds.
SMALL = os.environ.get("POFA_NOTEBOOK_SMALL") == "1"
ROOT = Path.cwd() if (Path.cwd() / "pofa_deploy").is_dir() else Path.cwd().parent
WORK = Path(os.environ.get("POFA_NOTEBOOK_WORK", ROOT / "work" / "notebooks"))
WORK.mkdir(parents=True, exist_ok=True)
print("small mode" if SMALL else "full mode", "| work folder:", WORK)"""

CONVERT = [
    new_markdown_cell("""# 1. Convert a sparse checkpoint and verify every zero

PoFA checkpoints cannot be downloaded on an offline machine, so this notebook synthesises one with
the same shapes and 90% unstructured sparsity in every encoder Linear (`pofa-deploy synth`), converts
it to INT8 with NNCF, and shows the evidence: the per-layer zero table, the zero check, the
sparse-decompression rate and what the CPU plugin actually ran. Give `MODEL` a real checkpoint
folder or hub id to do the same with it."""),
    new_code_cell(SETUP),
    new_code_cell("""from pofa_deploy.checkpoint import Task
from pofa_deploy.synth import Arch, write_checkpoint

MODEL = WORK / ("tiny-distilbert-90" if SMALL else "distilbert-base-90")
if not (MODEL / "config.json").exists():
    write_checkpoint(MODEL, Arch.TINY_DISTILBERT if SMALL else Arch.DISTILBERT_BASE,
                     task=Task.TEXT_CLASSIFICATION, sparsity=0.9, seed=0)
MODEL"""),
    new_code_cell("""from pofa_deploy import inspect_path
from pofa_deploy.tables import layers_text

before = inspect_path(MODEL)
print(layers_text(before["layers"][:8], before["totals"], eligible_header="eligible@int8"))"""),
    new_code_cell("""from pofa_deploy.convert import ConvertOptions, convert

OUT = WORK / (MODEL.name + "-int8")
report = convert(ConvertOptions(model=str(MODEL), output=OUT, int8=True, overwrite=True,
                                samples=16 if SMALL else 128, seq_len=32 if SMALL else 128),
                 progress=print)
report.zero_check["zeros_lost"], report.zero_check["new_zeros_from_rounding"], report.sparse_rate"""),
    new_markdown_cell("""## The zero check, per layer

`zeros lost` must be 0 for every layer (the converter refuses to write OUT otherwise); `new zeros` are
small weights that INT8 rounding turned into zeros, which is harmless and reported."""),
    new_code_cell("""from pofa_deploy.tables import format_table

rows = [[c["name"], c["zeros_before"], c["zeros_after"], c["lost"], c["new"]] for c in report.zero_check["layers"]]
print(format_table(["layer", "zeros before", "zeros after", "lost", "new"], rows, right=(1, 2, 3, 4)))"""),
    new_code_cell("""import matplotlib.pyplot as plt

layers = [r for r in report.ir_layers if r["eligible"]]
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(range(len(layers)), [100 * r["sparsity"] for r in layers], color="tab:green")
if report.sparse_rate:
    ax.axhline(100 * report.sparse_rate, color="k", ls="--", label=f"decompression rate {report.sparse_rate}")
    ax.legend()
ax.set_xlabel("eligible INT8 FullyConnected layer")
ax.set_ylabel("% zeros")
ax.set_ylim(0, 100)
ax.set_title("share of zeros per eligible layer after INT8 conversion")
fig.tight_layout()"""),
    new_markdown_cell("""## Is the sparse kernel actually running?

The CPU plugin only uses sparse-weight kernels on CPUs with AMX (4th-gen Xeon and later). The loader
applies `runtime_config.json` and reads the runtime graph after an inference at a static shape."""),
    new_code_cell("""import pofa_deploy

model = pofa_deploy.load(OUT)
model.warm_up(seq_len=32 if SMALL else 128)
status = model.sparse_status()
print(status.summary)
status.exec_types"""),
]

TRADEOFF = [
    new_markdown_cell("""# 2. Accuracy versus speed

Every variant of the SST-2 reference models — a dense fine-tuned all-MiniLM-L6-v2 and a 90%-sparse
copy (gradual magnitude pruning with distillation from the dense one, every zero kept) — as PyTorch
FP32, OpenVINO FP32 and OpenVINO INT8. Accuracy is SST-2 dev accuracy; speed comes from the
benchmark harness (interleaved rounds). The full-size figures come from the committed
`benchmarks/reference/results.json` (see `benchmarks/reference/README.md` for how it was made);
small mode rebuilds a miniature version of the whole pipeline end to end on tiny models."""),
    new_code_cell(SETUP),
    new_code_cell("""import json

from pofa_deploy import tradeoff

if not SMALL:
    results = json.loads((ROOT / "benchmarks" / "reference" / "results.json").read_text())
    points = tradeoff.from_json(results["points"])
    print(results["machine"], "| training budget:", results["budget_total_train_minutes"], "min on 2 cores")
else:
    from pofa_deploy.checkpoint import Task
    from pofa_deploy.convert import ConvertOptions, convert
    from pofa_deploy.finetune import FinetuneOptions, finetune
    from pofa_deploy.synth import Arch, write_checkpoint

    shared = ROOT.parent / "shared" / "data" / "sst2"
    data = WORK / "sst2-mini"
    data.mkdir(exist_ok=True)
    if (shared / "dev.tsv").exists():  # a slice of the real data
        for split, n in (("train", 200), ("dev", 64)):
            lines = (shared / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[: n + 1]
            (data / f"{split}.tsv").write_text("\\n".join(lines) + "\\n", encoding="utf-8")
    else:  # no shared data: a tiny made-up set in the same format
        rows = ["sentence\\tlabel"] + [f"{w} movie \\t{int(w == 'good')}" for w in ["good", "bad"] * 40]
        for split in ("train", "dev"):
            (data / f"{split}.tsv").write_text("\\n".join(rows) + "\\n", encoding="utf-8")
    sets = []
    for name, sparsity in (("dense", 0.0), ("sparse 90%", 0.9)):
        base = WORK / f"mini-{int(sparsity * 100)}"
        if not (base / "init" / "config.json").exists():
            write_checkpoint(base / "init", Arch.TINY_DISTILBERT, task=Task.TEXT_CLASSIFICATION, num_labels=2,
                             sparsity=sparsity)
        finetune(FinetuneOptions(model=str(base / "init"), task="sst2", data=str(data), output=base / "ft",
                                 max_steps=4, batch_size=8, seq_len=32, overwrite=True), progress=False)
        for int8, sub in ((False, "fp32"), (True, "int8")):
            convert(ConvertOptions(model=str(base / "ft"), output=base / sub, int8=int8, samples=8, holdout=2,
                                   seq_len=32, overwrite=True))
        sets.append(tradeoff.ModelSet(name, base / "ft", base / "fp32", base / "int8"))
    points = tradeoff.measure(sets, task="sst2", data=str(data), seq_len=32, seconds=0.3, rounds=2)
print(tradeoff.table(points))
if not SMALL:  # the accuracy targets, as paired differences with 95% bootstrap intervals (collect.py)
    for name, g in results["gaps"].items():
        print(f"{name}: {g['difference']:+.2f} points [{g['ci95_low']:+.2f}, {g['ci95_high']:+.2f}], "
              f"target {g['target']}")"""),
    new_code_cell("""from IPython.display import Image

title = "SST-2 dev accuracy versus throughput" + (" (small mode: tiny models)" if SMALL else "")
png = tradeoff.plot(points, WORK / "pareto.png", title=title)
Image(str(png))"""),
    new_markdown_cell("""Reading the plot: the dashed line joins the variants no other variant beats on
both accuracy and throughput. Sparse-weight decompression needs AMX; on a CPU without it the 90%-sparse INT8 model runs
the same dense INT8 kernels as a dense model of the same shape, so there its INT8 speed is expected to
match the dense INT8 model's (the table has the measured figures) and sparsity only costs accuracy.
`benchmarks/results/xeon-amx-16c/` has what the sparse kernels did on an AMX Xeon."""),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("01_convert_and_verify.ipynb", CONVERT)
    write("02_accuracy_vs_speed.ipynb", TRADEOFF)
    print("wrote", *sorted(p.name for p in HERE.glob("*.ipynb")))
