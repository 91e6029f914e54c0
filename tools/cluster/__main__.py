"""python -m tools.cluster up|down|status|env|images|monitoring|chart-images — the local node (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys

from tools.cluster import images, monitoring, node, project_images
from tools.cluster.layout import Layout
from tools.cluster.progress import say, step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__)
    parser.add_argument(
        "command",
        choices=("up", "down", "status", "env", "images", "monitoring", "chart-images"),
        help="up: start (idempotent); down: stop and restore the host; status: processes, RSS, node; "
        "env: the shell exports for kubectl; images: build StreamFlow's images (and the chart's third-party "
        "ones) and import them into the node; monitoring: prometheus-operator, Prometheus and "
        "kube-state-metrics wired as kube-prometheus-stack (idempotent); chart-images: build and import "
        "the third-party images k8s/local-values.yaml names (Pushgateway, PostgreSQL)",
    )
    parser.add_argument("--tag", help="images: the tag of the api and jobs images (make images passes a content tag)")
    parser.add_argument(
        "--release", default="kps", help="monitoring: the kube-prometheus-stack release it stands in for"
    )
    parser.add_argument("--namespace", default="monitoring", help="monitoring: its namespace")
    args = parser.parse_args(argv)
    layout = Layout.default()
    try:
        if args.command == "up":
            node.up(layout)
        elif args.command == "down":
            return 1 if node.down(layout) else 0
        elif args.command == "images":
            if not args.tag:
                parser.error("images needs --tag")
            with step("the chart's third-party images (k8s/local-values.yaml)"):
                third_party = images.chart_dependency_images(layout)
            node.load_images(layout, [*project_images.build(layout, args.tag), *third_party])
        elif args.command == "status":
            return 0 if node.status(layout) else 1
        elif args.command == "monitoring":
            monitoring.up(layout, monitoring.Names(release=args.release, namespace=args.namespace))
        elif args.command == "chart-images":
            with step("the chart's third-party images (k8s/local-values.yaml)"):
                built = images.chart_dependency_images(layout)
            images.import_missing(layout, built)
        else:
            print(f"export KUBECONFIG={layout.admin_kubeconfig}")
            print(f"export PATH={node.kubectl_path().parent}:$PATH")
    except (node.ClusterError, RuntimeError) as error:
        say(f"ERROR: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted: `make down CLUSTER=local` stops whatever was started")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
