#!/usr/bin/env python3
"""Build (or reuse) the Debian 12 lab image: systemd as PID 1, python3, sudo.

The image is rebuilt only when its recipe changes: the recipe hash covers the package list,
the setup script, the Dockerfile, this builder and the extra CA bundle, and is stored as an
image label. Two builders produce the same image:

* ``dockerfile``: ``docker build lab/`` (needs ``debian:bookworm`` from a registry);
* ``debootstrap``: ``debootstrap`` from the Debian mirror, then ``docker import``
  (for machines without a registry).

``auto`` (the default) uses the Dockerfile when the base image is present or can be pulled,
and debootstrap otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_DIR = REPO / "lab"
DEFAULT_IMAGE = "monitoring-lab/debian12:bookworm"
RECIPE_LABEL = "org.monitoring-stack.lab.recipe"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
BASE_IMAGE = "debian:bookworm"


def log(message: str) -> None:
    print(f"lab-image: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def packages() -> list[str]:
    lines = (LAB_DIR / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def recipe_hash(extra_ca: bytes) -> str:
    digest = hashlib.sha256()
    for name in ("packages.txt", "setup-image.sh", "Dockerfile"):
        digest.update((LAB_DIR / name).read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(extra_ca)
    return digest.hexdigest()[:16]


def current_recipe(image: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{RECIPE_LABEL}" }}}}', image],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def base_image_available() -> bool:
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False).returncode == 0:
        return True
    try:
        pulled = subprocess.run(["docker", "pull", BASE_IMAGE], capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return False
    return pulled.returncode == 0


def build_dockerfile(image: str, recipe: str, extra_ca: bytes) -> None:
    with tempfile.TemporaryDirectory() as context:
        for name in ("packages.txt", "setup-image.sh", "Dockerfile"):
            shutil.copy(LAB_DIR / name, Path(context) / name)
        (Path(context) / "extra-ca.crt").write_bytes(extra_ca)
        run(["docker", "build", "--label", f"{RECIPE_LABEL}={recipe}", "-t", image, context])


def build_debootstrap(image: str, recipe: str, extra_ca: bytes, mirror: str) -> None:
    if shutil.which("debootstrap") is None:
        raise SystemExit("lab-image: debootstrap is missing: apt-get install -y debootstrap")
    with tempfile.TemporaryDirectory(prefix="lab-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap bookworm from {mirror} (about a minute)")
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages())}",
                "bookworm",
                str(rootfs),
                mirror,
            ],
            stdout=subprocess.DEVNULL,
        )
        sources = rootfs / "etc/apt/sources.list"
        sources.write_text(
            f"deb {mirror} bookworm main\n"
            f"deb {mirror} bookworm-updates main\n"
            f"deb {mirror.rsplit('/', 1)[0]}/debian-security bookworm-security main\n"
        )
        (rootfs / "tmp/extra-ca.crt").write_bytes(extra_ca)
        shutil.copy(LAB_DIR / "setup-image.sh", rootfs / "tmp/setup-image.sh")
        run(["chroot", str(rootfs), "/bin/sh", "/tmp/setup-image.sh"])
        (rootfs / "tmp/setup-image.sh").unlink()
        log("docker import")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            [
                "docker",
                "import",
                "--change",
                "ENV container=docker",
                "--change",
                'CMD ["/lib/systemd/systemd"]',
                "--change",
                f"LABEL {RECIPE_LABEL}={recipe}",
                "-",
                image,
            ],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise SystemExit("lab-image: tar of the rootfs failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=os.environ.get("LAB_IMAGE", DEFAULT_IMAGE))
    parser.add_argument(
        "--builder",
        choices=("auto", "dockerfile", "debootstrap"),
        default=os.environ.get("LAB_IMAGE_BUILDER", "auto"),
    )
    parser.add_argument("--mirror", default=os.environ.get("LAB_DEBIAN_MIRROR", DEFAULT_MIRROR))
    parser.add_argument(
        "--extra-ca",
        default=os.environ.get("LAB_EXTRA_CA", DEFAULT_CA),
        help="PEM bundle trusted in addition to Debian's CAs ('' for none)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the recipe is unchanged")
    parser.add_argument("--print-recipe", action="store_true", help="print the recipe hash and exit")
    args = parser.parse_args(argv)

    extra_ca = Path(args.extra_ca).read_bytes() if args.extra_ca and Path(args.extra_ca).is_file() else b""
    recipe = recipe_hash(extra_ca)
    if args.print_recipe:
        print(recipe)
        return 0
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        raise SystemExit(
            "lab-image: no Docker engine answers. Install it (apt-get install -y docker.io) and start it "
            "(systemctl start docker, or `dockerd &` where there is no systemd)."
        )
    if not args.force and current_recipe(args.image) == recipe:
        log(f"{args.image} is up to date (recipe {recipe})")
        return 0
    builder = args.builder
    if builder == "auto":
        builder = "dockerfile" if base_image_available() else "debootstrap"
    log(f"building {args.image} with {builder} (recipe {recipe})")
    if builder == "dockerfile":
        build_dockerfile(args.image, recipe, extra_ca)
    else:
        build_debootstrap(args.image, recipe, extra_ca, args.mirror)
    log(f"built {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
