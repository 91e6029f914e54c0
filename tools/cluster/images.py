"""Container images without a registry: built with Debian's buildah, imported into containerd.

buildah runs with its own storage under images/buildah-overlay (overlay driver), pushes each
image to a docker-archive tarball (which keeps the name and tag), and `ctr images import` loads the
tarball into containerd's k8s.io namespace, where the kubelet finds it (pods use
imagePullPolicy IfNotPresent/Never: there is no registry to pull from).

Images of the node itself:
  pause          upstream's pause.c (k8s.io/kubernetes build/pause, from the Go module cache)
                 compiled static with Debian's gcc, in an image FROM scratch
  coredns        the minimal CoreDNS of tools.toolchain.coredns(), FROM scratch
  local-path     rancher's local-path-provisioner, FROM scratch
  busybox        Debian's busybox-static: the shell local-path-provisioner's helper pods run
debian_image() makes a Debian bookworm image from an mmdebstrap rootfs (tests, and the base of
the project's own images).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools import toolchain
from tools.cluster.layout import Layout

REGISTRY = "localhost/streamflow"
NONROOT = "65532:65532"


@dataclass(frozen=True)
class Image:
    name: str  # e.g. localhost/streamflow/pause:3.10.1
    archive: Path  # docker-archive tarball


def run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd[:4])} …, exit {result.returncode}): {result.stderr[-2000:]}")
    return result


def buildah(layout: Layout) -> list[str]:
    """The buildah command with the node's private storage (not /var/lib/containers).

    overlay, not vfs: vfs stores every layer as a full copy and diffs whole trees, so the API
    image (an 800 MB venv over a 250 MB base) took over 10 minutes to commit its layers; overlay
    mounts only while a step runs (buildah unmounts after each, so `down` finds nothing left).
    """
    store = layout.images / "buildah-overlay"
    return ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"), "--storage-driver", "overlay"]


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def scratch_image(layout: Layout, name: str, rootfs: Path, config: list[str]) -> Image:
    """An image FROM scratch holding the files of `rootfs`, configured with `buildah config` flags.

    Cached: the archive's name carries a digest of every file and of the configuration.
    """
    files = sorted(path for path in rootfs.rglob("*") if path.is_file() or path.is_symlink())
    digest = _digest(
        name.encode(),
        json.dumps(config).encode(),
        *(str(path.relative_to(rootfs)).encode() for path in files),
        *(path.read_bytes() if not path.is_symlink() else str(path.readlink()).encode() for path in files),
    )
    archive = layout.images / f"{name.rsplit('/', 1)[-1].replace(':', '-')}-{digest}.tar"
    if archive.exists():
        return Image(name, archive)
    return _commit(layout, name, archive, "scratch", [(str(rootfs) + "/", "/")], config)


def _commit(
    layout: Layout,
    name: str,
    archive: Path,
    base: str,
    copies: list[tuple[str, str]],
    config: list[str],
    add: bool = False,
) -> Image:
    command = buildah(layout)
    container = run([*command, "from", "--quiet", base], f"buildah from {base}").stdout.strip()
    try:
        for source, destination in copies:
            verb = "add" if add else "copy"
            run([*command, verb, "--quiet", container, source, destination], f"buildah {verb} {source}")
        if config:
            run([*command, "config", *config, container], f"buildah config of {name}")
        run([*command, "commit", "--quiet", "--rm", container, name], f"buildah commit {name}")
    except BaseException:
        subprocess.run([*command, "rm", container], capture_output=True, check=False)
        raise
    push_archive(layout, name, archive)
    # The archive is the cache: buildah's own copy would only double the disk used
    subprocess.run([*command, "rmi", name], capture_output=True, check=False)
    return Image(name, archive)


def push_archive(layout: Layout, name: str, archive: Path) -> None:
    """buildah's image `name` into a docker-archive tarball that keeps the name (ctr imports it under it)."""
    layout.images.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")  # renamed when complete: an interrupted push is not cached
    partial.unlink(missing_ok=True)
    run([*buildah(layout), "push", "--quiet", name, f"docker-archive:{partial}:{name}"], f"buildah push {name}")
    partial.rename(archive)


def pause_image(layout: Layout) -> Image:
    """upstream pause.c at the Kubernetes version of the node, compiled static with gcc."""
    info = json.loads(
        run(
            [toolchain.go(), "mod", "download", "-json", f"k8s.io/kubernetes@{toolchain.KUBE_APISERVER_VERSION}"], "go"
        ).stdout
    )
    source_dir = Path(info["Dir"]) / "build" / "pause"
    tag_line = re.search(r"^TAG \?= (\S+)", (source_dir / "Makefile").read_text(), re.MULTILINE)
    if tag_line is None:
        raise RuntimeError(f"no TAG in {source_dir / 'Makefile'}: cannot name the pause image")
    tag = tag_line.group(1)
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch, "rootfs")
        rootfs.mkdir()
        # The flags of upstream's Makefile (CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV))
        run(
            ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}-streamflow", "-o", str(rootfs / "pause"),
             str(source_dir / "linux" / "pause.c")],
            "gcc pause.c (needs Debian's gcc and libc6-dev)",
        )  # fmt: skip
        run(["strip", str(rootfs / "pause")], "strip pause")
        return scratch_image(
            layout, f"{REGISTRY}/pause:{tag}", rootfs, ["--entrypoint", '["/pause"]', "--user", "65535:65535"]
        )


def binary_image(layout: Layout, name: str, binary: Path, entrypoint: str) -> Image:
    """A static Go binary alone in an image FROM scratch, run as a non-root user."""
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch, "rootfs")
        (rootfs / Path(entrypoint).parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, rootfs / entrypoint.lstrip("/"))
        return scratch_image(layout, name, rootfs, ["--entrypoint", json.dumps([entrypoint]), "--user", NONROOT])


def busybox_image(layout: Layout) -> Image:
    """Debian's busybox-static with the applets a local-path helper pod runs (sh, mkdir, rm, ...)."""
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "busybox-static"], capture_output=True, text=True)
    if "install ok installed" not in installed.stdout:
        toolchain.apt_install("busybox-static")
    busybox = Path("/bin/busybox")
    version = run([str(busybox)], "busybox").stdout.splitlines()[0].split()[1].lstrip("v")
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch, "rootfs")
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        for applet in ("sh", "mkdir", "rm", "rmdir", "chmod", "ls", "cat", "echo", "sleep", "du", "test", "["):
            (rootfs / "bin" / applet).symlink_to("busybox")
        return scratch_image(layout, f"{REGISTRY}/busybox:{version}", rootfs, ["--cmd", '["/bin/sh"]'])


def debian_image(
    layout: Layout,
    name: str,
    packages: tuple[str, ...] = (),
    user: str = "",
    hooks: tuple[str, ...] = (),
    config: tuple[str, ...] = (),
    inputs: bytes = b"",
) -> Image:
    """A Debian bookworm image from `mmdebstrap --variant=minbase` (+ packages), cached by its inputs.

    hooks: mmdebstrap --customize-hook shell commands ("$1" is the rootfs); config: more
    `buildah config` flags; inputs: the bytes of any host file a hook copies in (part of the cache key).
    """
    digest = _digest(name.encode(), json.dumps([packages, user, hooks, config]).encode(), inputs)
    archive = layout.images / f"{name.rsplit('/', 1)[-1].replace(':', '-')}-{digest}.tar"
    if archive.exists():
        return Image(name, archive)
    if shutil.which("mmdebstrap") is None:
        toolchain.apt_install("mmdebstrap")
    with tempfile.TemporaryDirectory(dir=layout.images.parent if layout.images.parent.exists() else None) as scratch:
        rootfs = Path(scratch, "rootfs.tar")
        include = [f"--include={','.join(packages)}"] if packages else []
        run(
            ["mmdebstrap", "--quiet", "--variant=minbase", *include, "--aptopt=Acquire::Retries \"3\"",
             "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*", *(f"--customize-hook={hook}" for hook in hooks),
             "bookworm", str(rootfs)],
            "mmdebstrap bookworm",
            timeout=1800,
        )  # fmt: skip
        flags = ["--cmd", '["/bin/sh"]', *(["--user", user] if user else []), *config]
        return _commit(layout, name, archive, "scratch", [(str(rootfs), "/")], flags, add=True)


def import_images(layout: Layout, images: list[Image]) -> None:
    """Load the archives into containerd's k8s.io namespace (where the kubelet's images live)."""
    for image in images:
        run(
            ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", "images", "import",
             str(image.archive)],
            f"ctr images import {image.name}",
            timeout=900,
        )  # fmt: skip


def imported(layout: Layout) -> set[str]:
    result = run(
        ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", "images", "list", "--quiet"],
        "ctr images list",
    )
    return set(result.stdout.split())
