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

Images the StreamFlow chart names but that cannot be pulled here (chart_dependency_images(), named
as k8s/local-values.yaml tells the chart; never under the upstream names):
  pushgateway    the chart's Pushgateway version, built from its Go module, FROM scratch
  postgresql     Debian bookworm's postgresql-15 with an entrypoint honouring the official postgres
                 image's environment (POSTGRES_USER, POSTGRES_PASSWORD[_FILE], POSTGRES_DB, PGDATA)
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools import toolchain
from tools.cluster.layout import Layout
from tools.cluster.progress import say, step

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
    files: tuple[tuple[str, str, int], ...] = (),
    config: tuple[str, ...] = (),
    inputs: bytes = b"",
) -> Image:
    """A Debian bookworm image from `mmdebstrap --variant=minbase` (+ packages), cached by its inputs.

    hooks: mmdebstrap hook options (`--essential-hook=…`, `--customize-hook=…`); files: (path in
    the image, text, mode) written at the end; config: more `buildah config` flags (entrypoint, env);
    inputs: the bytes of any host file a hook copies in (part of the cache key).
    """
    extra = [hooks, files, config] if hooks or files or config else []  # without: the digest of older archives
    digest = _digest(name.encode(), json.dumps([packages, user, *extra]).encode(), *([inputs] if inputs else []))
    archive = layout.images / f"{name.rsplit('/', 1)[-1].replace(':', '-')}-{digest}.tar"
    if archive.exists():
        return Image(name, archive)
    if shutil.which("mmdebstrap") is None:
        toolchain.apt_install("mmdebstrap")
    with tempfile.TemporaryDirectory(dir=layout.images.parent if layout.images.parent.exists() else None) as scratch:
        rootfs = Path(scratch, "rootfs.tar")
        include = [f"--include={','.join(packages)}"] if packages else []
        uploads = []
        for number, (path, text, mode) in enumerate(files):
            local = Path(scratch, f"file-{number}")
            local.write_text(text)
            uploads += [f"--customize-hook=upload {local} {path}", f'--customize-hook=chmod {mode:o} "$1{path}"']
        run(
            ["mmdebstrap", "--quiet", "--variant=minbase", *include, "--aptopt=Acquire::Retries \"3\"",
             "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*", *hooks, *uploads, "bookworm", str(rootfs)],
            "mmdebstrap bookworm",
            timeout=1800,
        )  # fmt: skip
        flags = (
            ([] if "--cmd" in config else ["--cmd", '["/bin/sh"]']) + (["--user", user] if user else []) + list(config)
        )
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


def _archive_config(archive: Path) -> str:
    """The config digest of a docker-archive (manifest.json names the config `<hex>.json`)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise RuntimeError(f"{archive}: no manifest.json")
        manifest = json.load(member)
    return "sha256:" + manifest[0]["Config"].removesuffix(".json")


def import_missing(layout: Layout, wanted: list[Image]) -> None:
    """Import the images containerd lacks or holds in another build (the config digest its manifest
    names differs from the archive's); say "already imported" for the rest."""
    ctr = ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io"]
    listing = run([*ctr, "images", "list"], "ctr images list").stdout.splitlines()[1:]
    manifests = {line.split()[0]: line.split()[2] for line in listing if len(line.split()) > 2}

    def current(image: Image) -> bool:
        if image.name not in manifests:
            return False
        manifest = json.loads(run([*ctr, "content", "get", manifests[image.name]], "ctr content get").stdout)
        return manifest.get("config", {}).get("digest") == _archive_config(image.archive)

    missing = [image for image in wanted if not current(image)]
    if not missing:
        say(f"  already imported: {', '.join(image.name for image in wanted)}")
        return
    with step(f"importing {', '.join(image.name for image in missing)}"):
        import_images(layout, missing)


def imported(layout: Layout) -> set[str]:
    result = run(
        ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", "images", "list", "--quiet"],
        "ctr images list",
    )
    return set(result.stdout.split())


# --- Third-party images the StreamFlow chart names (make images CLUSTER=local) --------------------

LOCAL_VALUES = toolchain.REPO_ROOT / "k8s" / "local-values.yaml"
# The chart's postgresql: UID 70 is the `postgres` user of the official alpine image (the chart's
# database.postgresql.runAsUser); initdb and postgres look their UID up, so the image's postgres
# user gets 70 too, before postgresql-common's postinst would pick a free system UID.
POSTGRES_UID = 70
POSTGRES_ENTRYPOINT = r"""#!/bin/bash
# The official postgres image's environment contract on Debian's PostgreSQL (made by
# tools/cluster/images.py): POSTGRES_USER (default postgres), POSTGRES_PASSWORD or
# POSTGRES_PASSWORD_FILE (required on first start), POSTGRES_DB (default POSTGRES_USER), PGDATA.
# An empty PGDATA is initialised (initdb with the password, listen_addresses='*', password
# authentication for every TCP client), then postgres replaces this script.
set -euo pipefail
: "${POSTGRES_USER:=postgres}"
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then POSTGRES_PASSWORD="$(<"$POSTGRES_PASSWORD_FILE")"; fi
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [[ $# -eq 0 || "$1" == -* ]]; then set -- postgres "$@"; fi
if [[ "$1" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE is not set" >&2
    exit 1
  fi
  mkdir -p "$PGDATA" && chmod 0700 "$PGDATA"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [[ "$POSTGRES_DB" != postgres ]]; then
    printf 'CREATE DATABASE "%s";\n' "${POSTGRES_DB//\"/\"\"}" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "PostgreSQL initialised in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi
exec "$@"
"""


def local_image_names(values: Path = LOCAL_VALUES) -> dict[str, str]:
    """The image references k8s/local-values.yaml gives the chart, by component."""
    found = yaml.safe_load(values.read_text())
    sources = {"postgresql": found["database"]["postgresql"]["image"], "pushgateway": found["pushgateway"]["image"]}
    return {what: f"{image['registry']}/{image['repository']}:{image['tag']}" for what, image in sources.items()}


def postgresql_image(layout: Layout, name: str) -> Image:
    """Debian bookworm's PostgreSQL (the major is the tag's first part: `15-bookworm` -> postgresql-15)."""
    major = name.rsplit(":", 1)[1].split("-")[0]
    uid = POSTGRES_UID
    return debian_image(
        layout,
        name,
        packages=(f"postgresql-{major}",),
        user=f"{uid}:{uid}",
        hooks=(
            # before the packages: postgresql-common's postinst then finds the account and keeps its UID
            f"--essential-hook=echo 'postgres:x:{uid}:{uid}:PostgreSQL administrator:/var/lib/postgresql:/bin/bash'"
            ' >> "$1/etc/passwd"',
            f"--essential-hook=echo 'postgres:x:{uid}:' >> \"$1/etc/group\"",
            # postgresql-common's postinst creates a `main` cluster: the entrypoint makes its own in PGDATA
            f'--customize-hook=rm -rf "$1/var/lib/postgresql/{major}" "$1/etc/postgresql/{major}"',
            # the socket directory, as the postgres image has it: Debian's package leaves it to
            # systemd-tmpfiles at boot, so a pod without the chart's emptyDir there (ct install's
            # external database) failed: `could not create lock file "/var/run/postgresql/..."`
            f'--customize-hook=install -d -o {uid} -g {uid} -m 2775 "$1/run/postgresql"',
            "--skip=cleanup/run",  # mmdebstrap empties /run last (a tmpfs on a booted system) otherwise
        ),
        files=(("/usr/local/bin/docker-entrypoint.sh", POSTGRES_ENTRYPOINT, 0o755),),
        config=(
            "--entrypoint", '["/usr/local/bin/docker-entrypoint.sh"]',
            "--cmd", '["postgres"]',
            # initdb, postgres and pg_isready (the chart's probes) by their bare names, as in the official image
            "--env", f"PATH=/usr/lib/postgresql/{major}/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env", "LANG=C.UTF-8",
            "--port", "5432",
        ),
    )  # fmt: skip


def chart_dependency_images(layout: Layout) -> list[Image]:
    """Build (cached) the third-party images the chart runs with k8s/local-values.yaml: the
    Pushgateway at the chart's version and PostgreSQL; import them with import_images()."""
    names = local_image_names()
    pushgateway_version = names["pushgateway"].rsplit(":", 1)[1]
    binary = toolchain.pushgateway_release(pushgateway_version)
    return [
        # the upstream image's entrypoint path; the chart passes the listen address and persistence file
        binary_image(layout, names["pushgateway"], binary, "/bin/pushgateway"),
        postgresql_image(layout, names["postgresql"]),
    ]
