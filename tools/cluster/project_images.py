"""StreamFlow's own images on the local node: the repo's Dockerfile, built by buildah, no Docker Hub.

The Dockerfile takes its Python base as a build argument (PYTHON_IMAGE, python:3.11-slim-bookworm
for users). Here that base is made from Debian's packages instead: a bookworm minbase rootfs from
mmdebstrap with Debian's python3.11, laid out the way the Dockerfile expects of python:slim
(/usr/local/bin/python3.11, pip allowed to install uv), plus this machine's CA bundle, because
HTTPS from a build container is intercepted here and uv must trust the interceptor to reach the
package index. The same Dockerfile stages then build the `api` and `jobs` targets
(`buildah bud --layers`: an unchanged lock re-uses its venv layer), tagged as the chart names them
(docker.io/library/streamflow-<target>:<tag>, what `streamflow-api:<tag>` means to containerd),
pushed to docker-archive tarballs and imported into the node's containerd.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tools.cluster import images
from tools.cluster.layout import Layout
from tools.cluster.progress import say

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_BASE = f"{images.REGISTRY}/python:3.11-bookworm"
TARGETS = ("api", "jobs")
# What an unqualified `streamflow-api:<tag>` in a pod spec means to containerd and the kubelet
CHART_REGISTRY = "docker.io/library"


def image_name(target: str, tag: str) -> str:
    return f"{CHART_REGISTRY}/streamflow-{target}:{tag}"


def python_base(layout: Layout) -> images.Image:
    """Debian bookworm's Python 3.11 in the layout of python:3.11-slim-bookworm, with this machine's CAs."""
    ca_bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    return images.debian_image(
        layout,
        PYTHON_BASE,
        packages=("python3", "python3-pip", "ca-certificates"),
        hooks=(
            # The Dockerfile names the interpreter where python:slim has it
            '--customize-hook=ln -s /usr/bin/python3.11 "$1/usr/local/bin/python3.11"',
            # python:slim's interpreter is not Debian-managed: its pip may install uv (PEP 668 marker)
            '--customize-hook=rm -f "$1/usr/lib/python3.11/EXTERNALLY-MANAGED"',
            # HTTPS is intercepted on this machine: the build must trust the same CAs as the host
            f'--customize-hook=cp {ca_bundle} "$1/etc/ssl/certs/ca-certificates.crt"',
        ),
        # uv reads SSL_CERT_FILE (its default is its own bundled roots, which lack the interceptor)
        config=("--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        inputs=ca_bundle.read_bytes(),
    )


def _in_storage(layout: Layout, name: str) -> bool:
    found = subprocess.run([*images.buildah(layout), "inspect", "--type", "image", name], capture_output=True)
    return found.returncode == 0


def build(layout: Layout, tag: str, targets: tuple[str, ...] = TARGETS) -> list[images.Image]:
    """Build (or find) the archives of `targets` at `tag`. The tag names the content: an archive
    already built under it is used as it is (`make images` tags by git commit + working-tree hash)."""
    base = python_base(layout)
    built = []
    for target in targets:
        name = image_name(target, tag)
        archive = layout.images / f"streamflow-{target}-{tag}.tar"
        if archive.exists():
            say(f"  {name}: built already ({archive.name})")
            built.append(images.Image(name, archive))
            continue
        if not _in_storage(layout, PYTHON_BASE):
            images.run([*images.buildah(layout), "pull", "--quiet", f"docker-archive:{base.archive}"], "buildah pull")
        say(f"  building {name} (Dockerfile target {target}; an unchanged lock reuses its venv layer) ...")
        started = time.monotonic()
        images.run(
            [*images.buildah(layout), "bud", "--quiet", "--layers", "--network", "host", "--pull=never",
             "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}", "--target", target, "--tag", name,
             "--file", str(REPO_ROOT / "Dockerfile"), str(REPO_ROOT)],
            f"buildah bud --target {target}",
            timeout=3600,
        )  # fmt: skip
        images.push_archive(layout, name, archive)
        say(f"  built {name} in {time.monotonic() - started:.0f}s")
        built.append(images.Image(name, archive))
    return built
