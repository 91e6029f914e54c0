"""python -m tools.cluster up|down|status|env|images — the local node (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys

from tools.cluster import node, project_images
from tools.cluster.layout import Layout
from tools.cluster.progress import say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__)
    parser.add_argument(
        "command",
        choices=("up", "down", "status", "env", "images"),
        help="up: start (idempotent); down: stop and restore the host; status: processes, RSS, node; "
        "env: the shell exports for kubectl; images: build StreamFlow's images and import them into the node",
    )
    parser.add_argument("--tag", help="images: the tag of the api and jobs images (make images passes a content tag)")
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
            node.load_images(layout, project_images.build(layout, args.tag))
        elif args.command == "status":
            return 0 if node.status(layout) else 1
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
