#!/usr/bin/env bash
# Build a pure-Python wheelhouse for clientforge-backend and check that every wheel in it is
# py3-none-any, so that it installs on any target (the Ansible role copies it from the
# controller). Usage: app/scripts/build-wheelhouse.sh DIR [PIP]
#
# Every dependency ships a py3-none-any wheel except MarkupSafe (Flask -> Jinja2/Werkzeug), whose
# PyPI wheels are CPython/platform specific. MarkupSafe has a pure-Python fallback: built from its
# sdist with the C compiler disabled (CC=false), its setup.py skips the optional speed-up module
# and produces markupsafe-<v>-py3-none-any.whl. The escaping speed-up is irrelevant to a JSON API.
set -euo pipefail

dest="${1:?usage: build-wheelhouse.sh DIR [PIP]}"
pip="${2:-pip}"
app_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$dest"

# --no-cache-dir: never reuse a platform wheel that an earlier build left in pip's cache.
CC=false PIP_NO_BINARY=markupsafe $pip wheel --no-cache-dir "$app_dir" -w "$dest"

status=0
for wheel in "$dest"/*.whl; do
  case "$(basename "$wheel")" in
    *-py3-none-any.whl | *-py2.py3-none-any.whl) ;;
    *) echo "NOT PURE PYTHON: $(basename "$wheel")" >&2; status=1 ;;
  esac
done
if (( status == 0 )); then
  echo "wheelhouse $dest: $(find "$dest" -name '*.whl' | wc -l) wheels, all py3-none-any"
fi
exit "$status"
