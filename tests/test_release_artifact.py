"""The shared release_artifact helper: an asset from the artifacts directory is verified
against its checksum file (list or bare-hash form) and unpacked; anything else stops the run
with a message that says which file, where, and how to fix it."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest
from conftest import REPO, run_playbook

PLAYBOOK = REPO / "tests" / "playbooks" / "release_artifact.yml"


def make_asset(directory: Path, arch: str = "amd64") -> str:
    payload = directory / f"demo-1.0.0-{arch}"
    payload.mkdir()
    (payload / "demo").write_text(f"#!/bin/sh\necho demo {arch}\n")
    asset = directory / f"demo-1.0.0.linux-{arch}.tar.gz"
    with tarfile.open(asset, "w:gz") as tar:
        tar.add(payload, arcname="demo-1.0.0")
    return hashlib.sha256(asset.read_bytes()).hexdigest()


def install(
    tmp_path: Path,
    artifacts: Path,
    checksums_file: str,
    arches: dict[str, str] | None = None,
    download_from: Path | None = None,
) -> tuple[int, str]:
    """Run the role; with ``download_from`` the assets are downloaded (file:// URLs) into a cache."""
    hosts = {host: {"demo_arch": arch} for host, arch in (arches or {"amd": "amd64"}).items()}
    extra = {}
    if download_from is not None:
        extra = {
            "demo_artifacts_dir": "",
            "demo_base_url": f"file://{download_from}",
            "release_artifact_cache_dir": str(tmp_path / "cache"),
        }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": hosts,
                    "vars": {
                        "demo_artifacts_dir": str(artifacts),
                        "demo_install_root": str(tmp_path / "opt"),
                        "demo_checksums_file": checksums_file,
                        "demo_base_url": "https://example.invalid",
                        **extra,
                    },
                }
            }
        )
    )
    result = run_playbook(PLAYBOOK, inventory)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("form", ["list", "bare"])
def test_verified_asset_is_unpacked_once(tmp_path: Path, form: str) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    sha = make_asset(artifacts)
    if form == "list":
        other = "0" * 64
        (artifacts / "sha256sums.txt").write_text(f"{other}  other.tar.gz\n{sha}  demo-1.0.0.linux-amd64.tar.gz\n")
        name = "sha256sums.txt"
    else:
        (artifacts / "demo-1.0.0.linux-amd64.tar.gz.sha256").write_text(f"{sha}\n")
        name = "demo-1.0.0.linux-amd64.tar.gz.sha256"
    code, output = install(tmp_path, artifacts, name)
    assert code == 0, output
    assert (tmp_path / "opt" / "amd" / "demo").read_text().startswith("#!/bin/sh")
    code, output = install(tmp_path, artifacts, name)
    assert code == 0 and "changed=0" in output, output


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    make_asset(artifacts)
    (artifacts / "sha256sums.txt").write_text(f"{'a' * 64}  demo-1.0.0.linux-amd64.tar.gz\n")
    code, output = install(tmp_path, artifacts, "sha256sums.txt")
    assert code != 0
    assert "not the upstream asset" in output
    assert not (tmp_path / "opt" / "amd" / "demo").exists()


def test_missing_asset_names_file_directory_and_source(tmp_path: Path) -> None:
    empty = tmp_path / "artifacts"
    empty.mkdir()
    code, output = install(tmp_path, empty, "sha256sums.txt")
    output = " ".join(output.split())
    assert code != 0
    assert f"demo 1.0.0: demo-1.0.0.linux-amd64.tar.gz and sha256sums.txt missing in {empty.resolve()}" in output
    assert "https://example.invalid/demo-1.0.0.linux-amd64.tar.gz" in output
    assert "demo_artifacts_dir" in output
    assert not (tmp_path / "opt").exists(), "nothing may be created when the asset is missing"


def test_each_architecture_gets_its_own_verified_asset(tmp_path: Path) -> None:
    """An amd64 and an arm64 host in one play: each verifies and unpacks its own asset."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    lines = [f"{make_asset(artifacts, arch)}  demo-1.0.0.linux-{arch}.tar.gz" for arch in ("amd64", "arm64")]
    (artifacts / "sha256sums.txt").write_text("\n".join(lines) + "\n")
    code, output = install(tmp_path, artifacts, "sha256sums.txt", {"x86host": "amd64", "armhost": "arm64"})
    assert code == 0, output
    assert (tmp_path / "opt" / "x86host" / "demo").read_text() == "#!/bin/sh\necho demo amd64\n"
    assert (tmp_path / "opt" / "armhost" / "demo").read_text() == "#!/bin/sh\necho demo arm64\n"


def test_downloads_happen_once_per_distinct_asset_on_the_controller(tmp_path: Path) -> None:
    """Without an artifacts directory: each distinct asset is downloaded once into the cache."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    lines = [f"{make_asset(mirror, arch)}  demo-1.0.0.linux-{arch}.tar.gz" for arch in ("amd64", "arm64")]
    (mirror / "sha256sums.txt").write_text("\n".join(lines) + "\n")
    hosts = {"x86a": "amd64", "x86b": "amd64", "armhost": "arm64"}
    code, output = install(tmp_path, tmp_path, "sha256sums.txt", hosts, download_from=mirror)
    assert code == 0, output
    cached = sorted(p.name for p in (tmp_path / "cache" / "demo" / "1.0.0").iterdir())
    assert cached == ["demo-1.0.0.linux-amd64.tar.gz", "demo-1.0.0.linux-arm64.tar.gz", "sha256sums.txt"]
    for host, arch in hosts.items():
        assert (tmp_path / "opt" / host / "demo").read_text() == f"#!/bin/sh\necho demo {arch}\n"
