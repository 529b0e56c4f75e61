"""``pofa-deploy benchmark``: run, print the table (or the JSON with -json_stats), write the files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import progress
from ..ir import ir_xml
from .options import BenchmarkOptions


def default_output_dir(options: BenchmarkOptions) -> Path:
    if options.output_dir is not None:
        return Path(options.output_dir)
    assert options.model is not None
    folder = ir_xml(Path(options.model)).parent
    return folder / "benchmark"


def main(options: BenchmarkOptions) -> int:
    from .. import report
    from ..outputs import check_writable
    from .run import benchmark

    say = progress.printer(quiet=options.quiet)
    if options.model is not None:  # before the slow part: a user's folder is never written into
        check_writable(default_output_dir(options), overwrite=True, kind=report.JSON_NAME, flag="--output-dir")
    result = benchmark(options, progress=say)
    say("done")
    if result.kind == "peak":
        assert result.peak is not None
        text = report.peak_summary(result.peak)
        if options.json_stats:
            print(json.dumps(result.to_dict(), indent=2))
            print(text, file=sys.stderr)
        else:
            print(text)
        return 0
    out_dir = default_output_dir(options)
    files = report.write_all(result, out_dir, plots=not options.no_plots)
    table = report.format_table(result)
    if options.json_stats:
        print(json.dumps(result.to_dict(), indent=2))
        print(table, file=sys.stderr)
    else:
        print(table)
    shown = ", ".join(p.name for p in files.values())
    print(f"wrote {shown} to {out_dir}", file=sys.stderr)
    return 0
