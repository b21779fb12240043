"""Lints and renders a Helm chart offline with the Helm SDK (PyPI helm-python-sdk),
the way `helm lint --strict` and `helm template` would, and writes each rendered
manifest into a directory.

usage: helm_chart.py CHART OUTPUT_DIR [VALUES_JSON]
prints one JSON object: {"lint": {...}, "files": [paths]} or {"error": "..."}.
"""

import json
import os
import sys

import helm_python as helm


def main() -> int:
    chart_dir, output = sys.argv[1], sys.argv[2]
    values = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    try:
        report = helm.lint(chart_dir, values, strict=True, kube_version="v1.30.0")
        chart = helm.Chart.load(chart_dir)
        rendered = chart.render(values, name="weft", namespace="weft-test", is_install=True)
    except helm.HelmError as error:
        print(json.dumps({"error": str(error)}))
        return 0
    os.makedirs(output, exist_ok=True)
    files = []
    for path, text in sorted(rendered.items()):
        if not text.strip() or not path.endswith(".yaml"):
            continue
        target = os.path.join(output, path.replace("/", "_"))
        with open(target, "w", encoding="utf-8") as out:
            out.write(text)
        files.append(target)
    print(json.dumps({"lint": report, "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
