"""``pofa-deploy package OUT -o REPO``: a converted folder as a model repository that OpenVINO Model Server,
Triton's OpenVINO backend and KServe's ``kserve-openvino`` runtime load as it is.

What REPO holds (see ``formats`` for the sources each file follows)::

    REPO/config.json              OVMS: model_config_list (plugin_config from runtime_config.json, shape, nireq)
    REPO/NAME/N/model.xml, .bin   the served model: raw text in (tokenizer fused, --strings) or token tensors
    REPO/NAME/libpofa_sparse_ext.so   only when the tuned model file is openvino_model_sparse.xml
    REPO/triton/NAME/config.pbtxt, N/model.xml, .bin   Triton: token tensors (its backend has no string type)
    REPO/kserve.yaml              an InferenceService for the kserve-openvino ServingRuntime
    REPO/README.md                the exact launch commands; REPO/package_report.json: what was written, checked

The package, one concept a module: ``options`` (PackageOptions), ``model`` (the model file runtime.load would
run, the tokenizer fused in front of it, the check against ``textmodel``), ``formats`` (OVMS config and its
schema, Triton config.pbtxt, KServe YAML, README), ``run`` (``package()`` writes the staged REPO). Importing
this package loads only ``options``.
"""

from __future__ import annotations

from typing import Any

from .options import PackageOptions

OPTIONS = PackageOptions

__all__ = ["OPTIONS", "PackageOptions", "main", "package"]


def package(options: PackageOptions) -> dict[str, Any]:
    """Write the repository (see ``run.package``); returns the report written as package_report.json."""
    from .run import package as run_package

    return run_package(options)


def main(options: PackageOptions) -> int:
    """``pofa-deploy package``: write REPO and print where each server finds it."""
    from .run import main as run_main

    return run_main(options)
