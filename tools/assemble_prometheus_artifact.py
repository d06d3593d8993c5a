#!/usr/bin/env python3
"""Assemble a Prometheus release tarball in the upstream layout from Debian's binaries.

GitHub is unreachable here, so the Molecule scenario ``prometheus`` exercises the role's
archive install path with an artifact built from Debian's ``prometheus`` package:
``prometheus-<version>.linux-<arch>/{prometheus,promtool,LICENSE,NOTICE,...}`` packed as
``prometheus-<version>.linux-<arch>.tar.gz`` next to a ``sha256sums.txt`` in the format of
the upstream checksum file. The binaries come from ``/usr/bin`` when the package is installed,
otherwise from the package file fetched with ``apt-get download`` (no root needed).

The output is deterministic (fixed mtimes, owners and order), so a second run rewrites
nothing and prints ``unchanged``; the first line of output is ``changed`` or ``unchanged``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / ".cache" / "artifacts" / "prometheus"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armv7"}


def binary_version(prometheus: Path) -> str:
    out = subprocess.run([str(prometheus), "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    if not match:
        raise SystemExit(f"cannot read the version of {prometheus}: {out.stdout!r}")
    return match.group(1)


def debian_root(workdir: Path) -> Path:
    """A directory laid out like / that holds usr/bin/prometheus and usr/bin/promtool."""
    if Path("/usr/bin/prometheus").is_file() and Path("/usr/bin/promtool").is_file():
        return Path("/")
    download = workdir / "deb"
    download.mkdir()
    subprocess.run(["apt-get", "download", "prometheus"], cwd=download, check=True, capture_output=True)
    deb = next(download.glob("prometheus_*.deb"))
    root = workdir / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def members(root: Path) -> list[tuple[str, Path]]:
    """(name in the archive, source file) pairs, in a fixed order."""
    picked = [("prometheus", root / "usr/bin/prometheus"), ("promtool", root / "usr/bin/promtool")]
    doc = root / "usr/share/doc/prometheus"
    for name in ("LICENSE", "NOTICE"):
        if (doc / name).is_file():
            picked.append((name, doc / name))
    if (doc / "copyright").is_file() and not (doc / "LICENSE").is_file():
        picked.append(("LICENSE", doc / "copyright"))
    for sub in ("consoles", "console_libraries"):
        base = root / "etc/prometheus" / sub
        if base.is_dir():
            picked.extend((f"{sub}/{p.relative_to(base)}", p) for p in sorted(base.rglob("*")) if p.is_file())
    return picked


def build_tarball(top: str, files: list[tuple[str, Path]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({top} | {f"{top}/{Path(n).parent}" for n, _ in files if "/" in n})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, src in files:
            data = src.read_bytes()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if name in ("prometheus", "promtool") else 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_if_different(path: Path, content: bytes) -> bool:
    if path.is_file() and path.read_bytes() == content:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"artifacts directory (default {DEFAULT_OUT})")
    parser.add_argument("--arch", default=ARCHES.get(platform.machine(), "amd64"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = debian_root(Path(tmp))
        version = binary_version(root / "usr/bin/prometheus")
        top = f"prometheus-{version}.linux-{args.arch}"
        tarball = build_tarball(top, members(root))
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{top}.tar.gz"
    sums = f"{hashlib.sha256(tarball).hexdigest()}  {name}\n".encode()
    changed = write_if_different(args.out / name, tarball)
    changed = write_if_different(args.out / "sha256sums.txt", sums) or changed
    print("changed" if changed else "unchanged")
    print(f"{args.out / name} (version {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
