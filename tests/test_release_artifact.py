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
INVENTORY = "localhost,"


def make_asset(directory: Path) -> str:
    payload = directory / "demo-1.0.0"
    payload.mkdir()
    (payload / "demo").write_text("#!/bin/sh\necho demo\n")
    asset = directory / "demo-1.0.0.tar.gz"
    with tarfile.open(asset, "w:gz") as tar:
        tar.add(payload, arcname="demo-1.0.0")
    return hashlib.sha256(asset.read_bytes()).hexdigest()


def install(artifacts: Path, install_dir: Path, checksums_file: str) -> tuple[int, str]:
    extra = {
        "release_artifact_local_dir": str(artifacts),
        "release_artifact_file": "demo-1.0.0.tar.gz",
        "release_artifact_checksums_file": checksums_file,
        "release_artifact_install_dir": str(install_dir),
        "release_artifact_owner": "root",
    }
    result = run_playbook(PLAYBOOK, Path(INVENTORY), "-e", json.dumps(extra))
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("form", ["list", "bare"])
def test_verified_asset_is_unpacked_once(tmp_path: Path, form: str) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    sha = make_asset(artifacts)
    if form == "list":
        other = "0" * 64
        (artifacts / "sha256sums.txt").write_text(f"{other}  other.tar.gz\n{sha}  demo-1.0.0.tar.gz\n")
        name = "sha256sums.txt"
    else:
        (artifacts / "demo-1.0.0.tar.gz.sha256").write_text(f"{sha}\n")
        name = "demo-1.0.0.tar.gz.sha256"
    code, output = install(artifacts, tmp_path / "opt", name)
    assert code == 0, output
    assert (tmp_path / "opt" / "demo").read_text().startswith("#!/bin/sh")
    code, output = install(artifacts, tmp_path / "opt", name)
    assert code == 0 and "changed=0" in output, output


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    make_asset(artifacts)
    (artifacts / "sha256sums.txt").write_text(f"{'a' * 64}  demo-1.0.0.tar.gz\n")
    code, output = install(artifacts, tmp_path / "opt", "sha256sums.txt")
    assert code != 0
    assert "not the upstream asset" in output
    assert not (tmp_path / "opt" / "demo").exists()


def test_missing_asset_names_file_directory_and_source(tmp_path: Path) -> None:
    code, output = install(tmp_path, tmp_path / "opt", "sha256sums.txt")
    assert code != 0
    assert "demo-1.0.0.tar.gz and sha256sums.txt" in output
    assert str(tmp_path) in output
    assert "https://example.invalid/demo-1.0.0.tar.gz" in output
