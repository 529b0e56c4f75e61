"""``package()``: check OUT, write REPO into a staging folder (outputs.staged_output), check the packaged
model against ``textmodel`` there, and move REPO into place only when every file is written and checked."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..progress import Progress, printer
from . import formats
from .model import PAIR_TIE_NOTE, Choice, check, choose, io_of, new_core, write_served
from .options import PackageOptions

REPORT = "package_report.json"  # marks REPO as a package output: the only folder --overwrite replaces
SCHEMA = "pofa-deploy.package/1"


def check_folder(options: PackageOptions) -> Choice:
    """OUT is a converted folder with what this package needs, or a one-line InputError saying what to do."""
    from ..checkpoint import has_tokenizer
    from ..ir import REPORT_FILE

    out = Path(options.out)
    if not (out / "openvino_model.xml").is_file() or not (out / REPORT_FILE).is_file():
        raise InputError(f"OUT {out}: not a converted folder (no openvino_model.xml and {REPORT_FILE}); "
                         "convert first with pofa-deploy convert MODEL -o OUT")
    if options.strings and not has_tokenizer(out):
        raise InputError(f"OUT {out}: no tokenizer files (tokenizer.json or vocab.txt) to fuse for --strings; "
                         "re-run pofa-deploy convert (it saves the tokenizer) or pass --no-strings")
    choice = choose(out)
    if choice.sparse_kernel:
        from ..extension import extension_path

        extension_path()  # ExtensionError (one line, with the build command) when missing or stale
    return choice


def _link(src: Path, dst: Path) -> None:
    """dst as a hard link to src (one copy on disk), a copy where the filesystem has no links."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _versions() -> dict[str, str]:
    import openvino as ov
    import openvino_tokenizers

    return {"openvino": str(ov.get_version()), "openvino_tokenizers": str(openvino_tokenizers.__version__)}


def _write_models(tmp: Path, options: PackageOptions, choice: Choice, say: Progress) -> tuple[Path, Path]:
    """REPO/NAME/N/model.xml (served) and REPO/triton/NAME/N/model.xml (token tensors), plus the library."""
    from ..extension import extension_path

    name, version = options.model_name, str(options.version)
    served = tmp / name / version / "model.xml"
    triton = tmp / formats.TRITON_DIR / name / version / "model.xml"
    served.parent.mkdir(parents=True)
    triton.parent.mkdir(parents=True)
    say(f"writing {name}/{version}/model.xml from {choice.xml.name}"
        + (" with the tokenizer fused in front (raw text in)" if options.strings else " (token tensors in)"))
    write_served(choice, Path(options.out), served, strings=bool(options.strings), pair=options.text_pair)
    if options.strings:
        write_served(choice, Path(options.out), triton, strings=False, pair=False)
    else:
        for suffix in (".xml", ".bin"):
            _link(served.with_suffix(suffix), triton.with_suffix(suffix))
    if choice.sparse_kernel:
        library = extension_path()
        shutil.copy2(library, tmp / name / formats.LIBRARY_NAME)
        _link(tmp / name / formats.LIBRARY_NAME, tmp / formats.TRITON_DIR / name / formats.LIBRARY_NAME)
    return served, triton


def _plugin_config(folder: Path) -> dict[str, str]:
    """runtime_config.json's CPU properties as runtime.load applies them (an 'off' sparse rate left out)."""
    from ..runtime_config import compile_config

    return compile_config(folder)


def build(tmp: Path, options: PackageOptions, choice: Choice, say: Progress) -> dict[str, Any]:
    """Everything in REPO but the report; returns the report."""
    folder, name, version = Path(options.out), options.model_name, options.version
    served, triton_xml = _write_models(tmp, options, choice, say)
    plugin_config = _plugin_config(folder)
    inputs, outputs = io_of(new_core(served).read_model(str(served)))
    shapes = {i["name"]: i["dims"] for i in inputs}
    say("compiling the packaged model with the tuned properties and checking it against pofa-deploy's own run")
    checked = check(served, folder, choice, plugin_config, shapes, strings=bool(options.strings),
                    pair=options.text_pair)
    if options.nireq is not None:
        nireq, nireq_source = options.nireq, "--nireq"
    elif choice.nireq is not None:  # tune --objective throughput measured it
        nireq, nireq_source = choice.nireq, "tune_report.json (the measured winner's in-flight requests)"
    else:
        nireq = checked.optimal_requests
        nireq_source = "OPTIMAL_NUMBER_OF_INFER_REQUESTS of the tuned configuration on this machine"
    config = formats.ovms_config(name, version, plugin_config, shapes, nireq)
    problems = formats.schema_errors(config, formats.OVMS_SCHEMA)
    if problems:  # a bug here, not the user's: say so rather than write a config OVMS rejects
        raise AssertionError(f"config.json does not match OVMS's schema: {problems[0]}")
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    t_inputs, t_outputs = io_of(new_core(triton_xml).read_model(str(triton_xml)))
    t_params, dropped = formats.triton_parameters(plugin_config)
    if choice.sparse_kernel:
        t_params["CPU_EXTENSION_PATH"] = f"{formats.TRITON_MOUNT}/{name}/{formats.LIBRARY_NAME}"
    (tmp / formats.TRITON_DIR / name / "config.pbtxt").write_text(
        formats.triton_config(name, t_inputs, t_outputs, t_params))
    extension = f"{name}/{formats.LIBRARY_NAME}" if choice.sparse_kernel else None
    storage_uri = options.storage_uri or f"pvc://pofa-models/{name}"
    entry = config["model_config_list"][0]["config"]
    args = formats.ovms_flags(entry, f"{formats.KSERVE_MOUNT}/{formats.LIBRARY_NAME}" if extension else None)
    (tmp / "kserve.yaml").write_text(formats.kserve_yaml(name, storage_uri, args))
    versions = _versions()
    from ..environment import record

    report = {
        "schema": SCHEMA, "source": str(folder.resolve()), "name": name, "version": version,
        "model_file": choice.xml.name, "model_file_reason": choice.reason, "strings": options.strings,
        "text_pair": options.text_pair, "known_differences": [PAIR_TIE_NOTE] if options.text_pair else [],
        "inputs": inputs, "outputs": outputs, "plugin_config": plugin_config,
        "nireq": nireq, "nireq_source": nireq_source,
        "extension": extension,
        "check": {"sentences": checked.sentences, "max_abs_diff": checked.max_abs_diff,
                  "reference_max_abs": checked.reference_max_abs, "tolerance": "1e-3 x max(1, scale)",
                  "against": f"textmodel.open_text_model(OUT) running {choice.xml.name}"},
        "triton": {"inputs": t_inputs, "outputs": t_outputs, "parameters": t_params, "dropped": dropped},
        "kserve": {"runtime": "kserve-openvino", "storage_uri": storage_uri, "args": args},
        "launch": formats.launch_commands(name, versions["openvino"], extension is not None),
        "versions": versions, "environment": record(),
    }
    (tmp / "README.md").write_text(formats.readme(report))
    return report


def package(options: PackageOptions, *, say: Progress | None = None) -> dict[str, Any]:
    """Write REPO (see the package docstring); returns the report, also written as REPO/package_report.json."""
    from ..outputs import check_writable, staged_output

    say = say or printer(quiet=options.quiet)
    sources = {"OUT": options.out}
    check_writable(Path(options.output), overwrite=options.overwrite, kind=REPORT, sources=sources)
    choice = check_folder(options)
    with staged_output(Path(options.output), overwrite=options.overwrite, kind=REPORT, sources=sources) as tmp:
        report = build(tmp, options, choice, say)
        report["files"] = [*sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()), REPORT]
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    report["repository"] = str(Path(options.output).resolve())
    return report


def summary(report: dict[str, Any]) -> str:
    name, version = report["name"], report["version"]
    text = "raw text in ('text'" + (", 'text_pair'" if report["text_pair"] else "") + ")" if report["strings"] \
        else "token tensors in"
    lines = [f"wrote {report['repository']}: {name} version {version}, {report['model_file']} "
             f"({report['model_file_reason']}), {text}",
             f"checked: {report['check']['sentences']} sentences, max |diff| {report['check']['max_abs_diff']:.3g} "
             "against pofa-deploy's own run",
             "OVMS:   " + " ".join(report["launch"]["ovms"]).replace("$REPO", report["repository"]),
             "Triton: " + " ".join(report["launch"]["triton"]).replace("$REPO", report["repository"])
             + " (set TRITON_IMAGE)",
             f"KServe: upload {name}/ to {report['kserve']['storage_uri']}, then kubectl apply -f "
             f"{report['repository']}/kserve.yaml"]
    if report["triton"]["dropped"]:
        lines.append("Triton does not apply: " + ", ".join(report["triton"]["dropped"]))
    return "\n".join(lines)


def main(options: PackageOptions) -> int:
    print(summary(package(options)))
    return 0
