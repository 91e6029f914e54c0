"""The chart's README (charts/streamflow/README.md), written by helm-docs from Chart.yaml,
the `# --` comments of values.yaml and README.md.gotmpl.

`python -m tools.chart_docs` rewrites it (`make chart-docs`); `--check` generates it in a
temporary copy of the chart and fails when the committed README differs from it or when a value
has no description (`make verify`, tests/chart/test_chart_docs.py).
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

from tools import toolchain

CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "streamflow"
README = "README.md"
# Values in the order values.yaml lists them: the table reads like the file
HELM_DOCS_ARGS = ["--sort-values-order", "file", "--log-level", "warning"]


def generate(chart_dir: Path = CHART_DIR) -> str:
    """The README helm-docs writes for the chart in `chart_dir`, generated in a temporary copy
    (the chart itself is left as it is)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / chart_dir.name
        shutil.copytree(chart_dir, copy)
        (copy / README).unlink(missing_ok=True)
        result = toolchain.run_tool(
            [str(toolchain.helm_docs()), "--chart-search-root", str(copy), *HELM_DOCS_ARGS], timeout=120
        )
        # helm-docs skips a chart it cannot parse with a warning and still exits 0
        if result.stderr.strip() or not (copy / README).exists():
            raise RuntimeError(f"helm-docs did not write the README of {chart_dir}: {result.stderr.strip()}")
        return (copy / README).read_text()


def undocumented(readme: str) -> list[str]:
    """Keys of the README's values table with an empty description: values without a `# --`
    comment of their own or of a parent (helm-docs lists the children of a described object
    under that object's row)."""
    missing = []
    for line in readme.split("## Values", 1)[-1].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and line.startswith("| ") and cells[0] != "Key" and not cells[-1]:
            missing.append(cells[0])
    return missing


def problems(chart_dir: Path = CHART_DIR) -> list[str]:
    """What `--check` reports: undocumented values, then the stale README's diff."""
    generated = generate(chart_dir)
    found = [f"{key}: no `# --` description in values.yaml" for key in undocumented(generated)]
    committed_path = chart_dir / README
    committed = committed_path.read_text() if committed_path.exists() else ""
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "committed", "generated", lineterm=""
        )
        found.append(f"{committed_path} is stale (run `make chart-docs`):\n" + "\n".join(list(diff)[:60]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chart_docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the README is stale or a value undocumented")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for problem in found:
            print(problem, file=sys.stderr)
        return 1 if found else 0
    readme = generate()
    (CHART_DIR / README).write_text(readme)
    missing = undocumented(readme)
    for key in missing:
        print(f"{key}: no `# --` description in values.yaml", file=sys.stderr)
    print(f"wrote {CHART_DIR / README}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
