#!/usr/bin/env python3
"""Remove the lab image (``make distclean``), unless a container of any checkout still uses it.

The image is named like tools/lab_image.py names it: ``--image``, else ``LAB_IMAGE``, else
``monitoring-lab/debian12:bookworm``. This lives apart from lab_image.py on purpose: the
builder's own bytes are part of the image recipe, so editing it would rebuild the shared image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from lab_image import DEFAULT_IMAGE, log


def remove_image(image: str) -> int:
    if shutil.which("docker") is None:
        log("no docker command: no image to remove")
        return 0
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
        log(f"{image} is not there: nothing to remove")
        return 0
    users = subprocess.run(
        ["docker", "ps", "--all", "--filter", f"ancestor={image}", "--format", "{{ .Names }}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if users:
        raise SystemExit(
            f"lab-image: {image} is not removed: containers use it ({', '.join(sorted(users))}). "
            "Remove them first (`make down` in the checkout that created them)."
        )
    subprocess.run(["docker", "image", "rm", image], stdout=subprocess.DEVNULL, check=True)
    log(f"removed {image}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=os.environ.get("LAB_IMAGE") or DEFAULT_IMAGE)
    return remove_image(parser.parse_args(argv).image)


if __name__ == "__main__":
    sys.exit(main())
