#!/usr/bin/env python3
"""A real webhook receiver for the alerting scenario: every POST body is appended, as one JSON
line with the time it arrived, to the file named on the command line.

    webhook_receiver.py PORT FILE

Standard library only; verify.yml runs it as a transient systemd unit with a bounded lifetime.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

LOCK = Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {"unparsed": body.decode(errors="replace")}
        line = json.dumps({"received_at": time.time(), "path": self.path, "body": parsed})
        with LOCK, open(sys.argv[2], "a", encoding="utf-8") as out:
            out.write(line + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the file is the record."""


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Receiver).serve_forever()
