"""The files servers read, each written from the documented format of the server that reads it.

OVMS (openvinotoolkit/model_server): ``config.json``'s schema is ``MODELS_CONFIG_SCHEMA`` in src/schema.cpp
(``OVMS_SCHEMA`` below is its model_config_list part, with every property a model entry may carry); a
shape is a string "(d0,d1)" where a dimension is N, -1 or MIN:MAX (src/shape.cpp); relative base_path is
relative to config.json (docs/parameters.md); a CPU extension is only the server flag ``--cpu_extension``
(src/cli_parser.cpp, one library; config.json has no key for it), while libopenvino_tokenizers.so is
added by the server itself (src/modelmanager.cpp). ``target_device`` is written because OVMS otherwise
prefers a GPU, and plugin_config is CPU properties.

Triton (triton-inference-server/openvino_backend, src/openvino.cc): the backend passes only
INFERENCE_NUM_THREADS, COMPILATION_NUM_THREADS, HINT_BF16 (YES), NUM_STREAMS and PERFORMANCE_HINT to
OpenVINO and loads one CPU_EXTENSION_PATH (absolute); it maps no string type (src/openvino_utils.cc), so
its model takes token tensors. Every other tuned property is listed as dropped, never silently lost.

KServe (kserve/kserve config/runtimes/kserve-openvino.yaml): the ClusterServingRuntime ``kserve-openvino``
(model format ``openvino``) runs OVMS with ``--model_name={{.Name}} --model_path=/mnt/models``; the
InferenceService's ``args`` are appended to those (MergeRuntimeContainers), so the per-model settings go
there as OVMS flags and storageUri must hold REPO/NAME (the version folders), not REPO.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

LIBRARY_NAME = "libpofa_sparse_ext.so"
TRITON_DIR = "triton"
TRITON_MOUNT = "/models"  # where README's docker command mounts REPO/triton (CPU_EXTENSION_PATH is absolute)
KSERVE_MOUNT = "/mnt/models"  # where the kserve-openvino runtime's storage initializer puts storageUri

_VALUE = {"anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "number"}]}
_SHAPE = {"oneOf": [{"type": "object", "additionalProperties": {"type": "string"}}, {"type": "string"}]}
_POLICY = {"type": "object", "maxProperties": 1, "additionalProperties": False, "properties": {
    "all": {"type": "object", "maxProperties": 0},
    "specific": {"type": "object", "required": ["versions"], "additionalProperties": False,
                 "properties": {"versions": {"type": "array", "items": {"type": "integer", "minimum": 1}}}},
    "latest": {"type": "object", "required": ["num_versions"], "additionalProperties": False,
               "properties": {"num_versions": {"type": "integer", "minimum": 1}}}}}
OVMS_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["model_config_list"], "additionalProperties": False,
    "properties": {"model_config_list": {"type": "array", "items": {
        "type": "object", "required": ["config"], "maxProperties": 1, "properties": {"config": {
            "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                "name": {"type": "string"}, "base_path": {"type": "string"},
                "batch_size": {"type": ["integer", "string"], "minimum": 0}, "graph_path": {"type": "string"},
                "subconfig": {"type": "string"}, "model_version_policy": _POLICY, "shape": _SHAPE,
                "layout": _SHAPE, "nireq": {"type": "integer", "minimum": 0}, "target_device": {"type": "string"},
                "allow_cache": {"type": "boolean"},
                "plugin_config": {"type": "object", "additionalProperties": _VALUE},
                "custom_loader_options": {"type": "object", "required": ["loader_name"],
                                          "properties": {"loader_name": {"type": "string"}}}}}}}}}}

_TYPES: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list, "string": str, "boolean": bool,
                                              "integer": int, "number": (int, float)}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The JSON-schema keywords OVMS_SCHEMA uses, checked (an empty list: valid). Small on purpose: no
    dependency, and a keyword it does not know is an error rather than silently passed."""
    known = {"type", "required", "properties", "additionalProperties", "items", "minimum", "maxProperties",
             "anyOf", "oneOf"}
    if set(schema) - known:
        return [f"{where}: schema keyword {sorted(set(schema) - known)[0]} is not supported here"]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        ok = any(isinstance(value, _TYPES[n]) and not (n in ("integer", "number") and isinstance(value, bool))
                 for n in names)
        if not ok:
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            passing = sum(not schema_errors(value, s, where) for s in schema[key])
            if passing == 0 or (key == "oneOf" and passing > 1):
                return [f"{where}: matches {passing} of the {key} alternatives"]
    errors: list[str] = []
    if isinstance(value, (int, float)) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below {schema['minimum']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, dict):
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        if len(value) > schema.get("maxProperties", len(value)):
            errors.append(f"{where}: at most {schema['maxProperties']} properties")
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{where}.{k}")
            elif extra is False:
                errors.append(f"{where}: unknown key {k!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(v, extra, f"{where}.{k}")
    return errors


def ovms_shape(dims: list[int]) -> str:
    """OVMS's shape string: [-1, 128] -> "(-1,128)"."""
    return "(" + ",".join(str(d) for d in dims) + ")"


def ovms_config(name: str, version: int, plugin_config: dict[str, str], shapes: dict[str, list[int]],
                nireq: int) -> dict[str, Any]:
    """REPO/config.json: one model, base_path relative to the file, the packaged version only."""
    return {"model_config_list": [{"config": {
        "name": name, "base_path": name, "target_device": "CPU",
        "model_version_policy": {"specific": {"versions": [version]}},
        "plugin_config": dict(plugin_config), "shape": {k: ovms_shape(v) for k, v in shapes.items()},
        "nireq": nireq}}]}


def ovms_flags(entry: dict[str, Any], extension: str | None) -> list[str]:
    """The same per-model settings as single-model OVMS flags (KServe cannot pass --config_path: its runtime
    already sets --model_path, and OVMS refuses both)."""
    flags = [f"--target_device={entry['target_device']}"]
    if entry["plugin_config"]:  # an empty one would only restate the plugin's defaults
        flags.append(f"--plugin_config={json.dumps(entry['plugin_config'], separators=(',', ':'))}")
    flags += [f"--shape={json.dumps(entry['shape'], separators=(',', ':'))}", f"--nireq={entry['nireq']}"]
    return flags + ([f"--cpu_extension={extension}"] if extension else [])


TRITON_DIRECT = ("INFERENCE_NUM_THREADS", "COMPILATION_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT")
TRITON_TYPES = {"i64": "TYPE_INT64", "i32": "TYPE_INT32", "f32": "TYPE_FP32", "f16": "TYPE_FP16",
                "u8": "TYPE_UINT8", "i8": "TYPE_INT8", "boolean": "TYPE_BOOL"}


def triton_parameters(plugin_config: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(parameters the OpenVINO backend applies, {property: why dropped})."""
    params: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for key, value in plugin_config.items():
        if key in TRITON_DIRECT:
            params[key] = str(value)
        elif key == "INFERENCE_PRECISION_HINT" and str(value).lower() == "bf16":
            params["HINT_BF16"] = "YES"
        else:
            dropped[key] = (f"{key}={value}: Triton's OpenVINO backend passes only "
                            f"{', '.join(TRITON_DIRECT)} and HINT_BF16=YES to OpenVINO")
    return params, dropped


def _tensors(kind: str, ports: list[dict[str, Any]]) -> list[str]:
    lines = [f"{kind} ["]
    for i, p in enumerate(ports):
        dims = ", ".join(str(d) for d in p["dims"])
        comma = "," if i < len(ports) - 1 else ""
        lines.append(f'  {{ name: "{p["name"]}" data_type: {TRITON_TYPES[p["type"]]} dims: [ {dims} ] }}{comma}')
    return [*lines, "]"]


def triton_config(name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
                  params: dict[str, str]) -> str:
    """config.pbtxt (protobuf text) for the OpenVINO backend. max_batch_size 0: dims carry the batch (-1),
    so Triton does not add one, and the backend keeps the IR's dynamic shapes."""
    lines = [f'name: "{name}"', 'backend: "openvino"', "max_batch_size: 0",
             *_tensors("input", inputs), *_tensors("output", outputs),
             "instance_group [ { count: 1 kind: KIND_CPU } ]"]
    if params:
        lines.append("parameters [")
        items = list(params.items())
        for i, (k, v) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            lines.append(f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}{comma}')
        lines.append("]")
    return "\n".join(lines) + "\n"


def _yaml_str(text: str) -> str:
    """A single-quoted YAML scalar (the only escape in that style is '' for ')."""
    return "'" + text.replace("'", "''") + "'"


def kserve_yaml(name: str, storage_uri: str, args: list[str]) -> str:
    """An InferenceService on the kserve-openvino runtime, KServe v2 protocol (string inputs are BYTES)."""
    lines = ["apiVersion: serving.kserve.io/v1beta1", "kind: InferenceService", "metadata:", f"  name: {name}",
             "spec:", "  predictor:", "    model:", "      modelFormat:", "        name: openvino",
             "      runtime: kserve-openvino", "      protocolVersion: v2",
             f"      storageUri: {_yaml_str(storage_uri)}",
             "      args:", *(f"        - {_yaml_str(a)}" for a in args)]
    return "\n".join(lines) + "\n"


def launch_commands(name: str, openvino_version: str, extension: bool) -> dict[str, list[str]]:
    """argv of each server on REPO (docker for OVMS and Triton, kubectl for KServe)."""
    release = ".".join(openvino_version.split(".")[:2])
    ovms = ["docker", "run", "--rm", "-p", "9000:9000", "-p", "8000:8000", "-v", "$REPO:/models:ro",
            f"openvino/model_server:{release}", "--config_path", "/models/config.json", "--port", "9000",
            "--rest_port", "8000"]
    if extension:
        ovms += ["--cpu_extension", f"/models/{name}/{LIBRARY_NAME}"]
    triton = ["docker", "run", "--rm", "-p", "8000:8000", "-p", "8001:8001", "-v",
              f"$REPO/{TRITON_DIR}:{TRITON_MOUNT}:ro", "$TRITON_IMAGE", "tritonserver",
              f"--model-repository={TRITON_MOUNT}"]
    return {"ovms": ovms, "triton": triton, "kserve": ["kubectl", "apply", "-f", "$REPO/kserve.yaml"]}


def readme(report: dict[str, Any]) -> str:
    """REPO/README.md: what is here and the exact commands, from the report (so they cannot disagree)."""
    name, version, launch = report["name"], report["version"], report["launch"]
    inputs = ", ".join(f"{i['name']} ({i['type']}, {i['dims']})" for i in report["inputs"])
    outputs = ", ".join(f"{o['name']} ({o['type']}, {o['dims']})" for o in report["outputs"])
    ext = report["extension"]
    release = report["versions"]["openvino"].split("-")[0]
    lines = [f"# {name}: pofa-deploy package of {report['source']}", "",
             "REPO below is this folder (`REPO=$(pwd)`).",
             f"Model file: {report['model_file']} ({report['model_file_reason']}); version {version}.",
             f"Inputs: {inputs}. Outputs: {outputs}.",
             "OpenVINO Model Server: `config.json` + `" + f"{name}/{version}/model.xml`.",
             "", "    " + " ".join(shlex.quote(a) if not a.startswith("$") else a for a in launch["ovms"]), "",
             f"Triton (OpenVINO backend; token-tensor model, no string type there): `{TRITON_DIR}/`. Use a Triton "
             f"image whose OpenVINO backend is built on OpenVINO {release}.", "",
             "    " + " ".join(launch["triton"]), "",
             f"KServe (runtime kserve-openvino): upload `{name}/` to the storageUri in kserve.yaml "
             f"({report['kserve']['storage_uri']}), then", "", "    " + " ".join(launch["kserve"]), ""]
    if report["strings"]:
        lines += ["Raw text in: send the input `text` as BYTES, e.g. "
                  f'`{{"inputs": [{{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine film"]}}]}}` '
                  f"to /v2/models/{name}/infer; the server's libopenvino_tokenizers must match openvino-tokenizers "
                  f"{report['versions']['openvino_tokenizers']}.", ""]
    if ext:
        lines += [f"`{ext}` is pofa-deploy's SparseFullyConnected op, built for OpenVINO "
                  f"{release}: OVMS takes it as `--cpu_extension` (above and in kserve.yaml), "
                  f"Triton as CPU_EXTENSION_PATH ({TRITON_MOUNT}/{name}/{LIBRARY_NAME}). The server's OpenVINO must "
                  "be that release.", ""]
    dropped = report["triton"]["dropped"]
    if dropped:
        lines += ["Not applied by Triton: " + "; ".join(dropped.values()) + ".", ""]
    return "\n".join(lines)
