"""chart-testing (`ct`) on charts/streamflow with the repository's ct.yaml.

- `python -m tools.chart_testing lint` (part of `make lint`): yamale on Chart.yaml, yamllint on
  Chart.yaml, values.yaml and every ci/*-values.yaml, then `helm lint --strict` with each of them.
  ct, helm and the lint venv (yamllint, yamale) come from tools/toolchain.py at pinned versions.
- `python -m tools.chart_testing install --image-tag TAG` (`make ct-install`): `ct install` of every
  ci/*-values.yaml on the current KUBECONFIG, one after the other, each with `helm test`. It needs
  the images of `make images` in the cluster and the prometheus-operator CRDs (`make monitoring`).

ct installs each scenario as a release of its own but in one namespace (NAMESPACE, made anew), so
what the scenarios expect to exist can be created first, the way their comments tell users to:
the two database Secrets and the external database itself (a throwaway PostgreSQL pod), and the
PriorityClasses of ci/pod-options-values.yaml. Every scenario runs the images the cluster has:
StreamFlow's at --image-tag, the third-party ones from values.yaml's registries (a scenario's
example registries are not reachable).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from tools import toolchain

CHART_DIR = toolchain.REPO_ROOT / "charts" / "streamflow"
CONFIG = toolchain.REPO_ROOT / "ct.yaml"
NAMESPACE = "streamflow-ct"
# Values paths of the chart's images: StreamFlow's own (tagged by `make images`), third-party ones
OWN_IMAGES = ("api", "drift", "bootstrap")
THIRD_PARTY_IMAGES = ("database.postgresql", "pushgateway")
# ci/pod-options-values.yaml schedules its pods with these (cluster-scoped: created and removed here)
PRIORITY_CLASSES = ("streamflow-serving", "streamflow-batch")
EXTERNAL_DB = "ct-external-db"


def _environment(kubectl: str | None = None) -> dict[str, str]:
    """ct runs `helm`, `yamllint`, `yamale` (and `kubectl` for install) from PATH."""
    directories = [str(toolchain.helm().parent), str(toolchain.lint_venv())]
    if kubectl and os.sep in kubectl:
        directories.append(str(Path(kubectl).resolve().parent))
    return {**os.environ, "PATH": os.pathsep.join([*directories, os.environ.get("PATH", "")])}


def lint(chart_dir: Path = CHART_DIR) -> subprocess.CompletedProcess:
    """`ct lint` of the chart in `chart_dir` (a copy may be linted too); never raises on failure."""
    ct = toolchain.chart_testing()
    etc = ct.parent / "etc"
    command = [str(ct), "lint", "--config", str(CONFIG), "--charts", str(chart_dir)]
    command += ["--lint-conf", str(etc / "lintconf.yaml"), "--chart-yaml-schema", str(etc / "chart_schema.yaml")]
    return subprocess.run(
        command, cwd=toolchain.REPO_ROOT, env=_environment(), capture_output=True, text=True, check=False, timeout=600
    )


def chart_values(overrides: Path | None = None) -> dict:
    """values.yaml, with a cluster kind's overrides (k8s/local-values.yaml) merged over it."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    if overrides is not None:
        _merge(values, yaml.safe_load(overrides.read_text()) or {})
    return values


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def image_set_args(image_tag: str, values: dict) -> str:
    """--set pairs that make every scenario run the images the cluster has: StreamFlow's at
    `image_tag` without a registry or digest, the third-party ones as `values` name them."""
    pairs = []
    for path in OWN_IMAGES:
        pairs += [f"{path}.image.registry=", f"{path}.image.digest=", f"{path}.image.tag={image_tag}"]
    for path in THIRD_PARTY_IMAGES:
        image = _at(values, path)["image"]
        pairs += [
            f"{path}.image.{key}={image[key]}" for key in ("registry", "repository", "tag", "digest", "pullPolicy")
        ]
    # ct install always runs `helm install --wait`, which waits for every PVC to be Bound; the drift
    # reports' PVC binds only at the CronJob's first run (WaitForFirstConsumer), so it would hang
    pairs.append("drift.reports.persistence.enabled=false")
    return "--set=" + ",".join(pairs)


def _at(values: dict, path: str) -> dict:
    for key in path.split("."):
        values = values[key]
    return values


def _kubectl(kubectl: str, *args: str, stdin: str | None = None) -> None:
    subprocess.run([kubectl, *args], input=stdin, text=True, check=True, env=_environment(kubectl))


def _secret(name: str, **data: str) -> list[str]:
    return ["create", "secret", "generic", name, *(f"--from-literal={key}={value}" for key, value in data.items())]


def prepare(kubectl: str, values: dict) -> None:
    """A fresh NAMESPACE with what the scenarios expect to exist (their comments say so)."""
    _kubectl(kubectl, "get", "crd", "servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")
    _kubectl(kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait")
    _kubectl(kubectl, "create", "namespace", NAMESPACE)
    ns = ["-n", NAMESPACE]
    # ci/existing-secret-values.yaml: the bundled PostgreSQL with the user's Secret; the URL names
    # the Service <fullname>-postgresql, which that file fixes with fullnameOverride
    password = secrets.token_hex(16)
    _kubectl(
        kubectl,
        *ns,
        *_secret(
            "streamflow-db-credentials",
            password=password,
            url=f"postgresql://streamflow:{password}@streamflow-postgresql:5432/streamflow",
        ),
    )
    # ci/external-database-values.yaml: a database the release does not own, here a throwaway
    # PostgreSQL pod (the chart's own PostgreSQL image), and the Secret with its URL
    image = values["database"]["postgresql"]["image"]
    reference = "/".join(filter(None, [image["registry"], f"{image['repository']}:{image['tag']}"]))
    password = secrets.token_hex(16)
    _kubectl(
        kubectl,
        *ns,
        "run",
        EXTERNAL_DB,
        f"--image={reference}",
        f"--image-pull-policy={image['pullPolicy']}",
        "--port=5432",
        "--expose",
        "--env=POSTGRES_USER=streamflow",
        "--env=POSTGRES_DB=streamflow",
        f"--env=POSTGRES_PASSWORD={password}",
    )
    _kubectl(kubectl, *ns, "wait", "--for=condition=Ready", f"pod/{EXTERNAL_DB}", "--timeout=5m")
    url = f"postgresql://streamflow:{password}@{EXTERNAL_DB}:5432/streamflow"
    _kubectl(kubectl, *ns, *_secret("streamflow-database", url=url))
    # ci/pod-options-values.yaml: its priority classes (its pull secret may be missing: a warning)
    for name in PRIORITY_CLASSES:
        manifest = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "streamflow-ct"}},
            "value": 1000,
        }
        _kubectl(kubectl, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def clean_up(kubectl: str) -> None:
    _kubectl(kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait")
    _kubectl(kubectl, "delete", "priorityclass", "-l", "app.kubernetes.io/managed-by=streamflow-ct")


def install(image_tag: str, kubectl: str, overrides: Path | None = None) -> int:
    values = chart_values(overrides)
    prepare(kubectl, values)
    ct = toolchain.chart_testing()
    command = [str(ct), "install", "--config", str(CONFIG), "--charts", str(CHART_DIR)]
    command += ["--namespace", NAMESPACE, "--release-label", "app.kubernetes.io/instance"]
    command += ["--helm-extra-set-args", image_set_args(image_tag, values)]
    try:
        return subprocess.run(command, cwd=toolchain.REPO_ROOT, env=_environment(kubectl), check=False).returncode
    finally:
        clean_up(kubectl)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chart_testing", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lint", help="ct lint: yamale, yamllint and helm lint --strict with each ci/*-values.yaml")
    install_parser = commands.add_parser("install", help="ct install of every ci/*-values.yaml on the current cluster")
    install_parser.add_argument("--image-tag", required=True, help="tag of the images `make images` loaded")
    install_parser.add_argument("--kubectl", default="kubectl", help="kubectl to run (ct calls it too)")
    install_parser.add_argument(
        "--values", type=Path, help="the cluster kind's image overrides (CLUSTER=local: k8s/local-values.yaml)"
    )
    args = parser.parse_args(argv)
    if args.command == "lint":
        result = lint()
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
        return result.returncode
    return install(args.image_tag, args.kubectl, args.values)


if __name__ == "__main__":
    sys.exit(main())
