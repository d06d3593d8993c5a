"""``clientforge-backend`` console script: exec gunicorn with the packaged configuration."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Final, NoReturn

GUNICORN_CONFIG: Final = "python:clientforge_backend.gunicorn_conf"
APP_SPEC: Final = "clientforge_backend:create_app()"


def gunicorn_argv(extra: list[str]) -> list[str]:
    """The command line: ``gunicorn -c python:clientforge_backend.gunicorn_conf APP``.

    Prefers the ``gunicorn`` script next to this interpreter (same virtualenv), then PATH,
    then ``python -m gunicorn``.
    """
    beside = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    if os.access(beside, os.X_OK):
        return [beside, "-c", GUNICORN_CONFIG, *extra, APP_SPEC]
    found = shutil.which("gunicorn")
    if found:
        return [found, "-c", GUNICORN_CONFIG, *extra, APP_SPEC]
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, *extra, APP_SPEC]


def main(argv: list[str] | None = None) -> NoReturn:
    args = gunicorn_argv(list(sys.argv[1:] if argv is None else argv))
    os.execv(args[0], args)
