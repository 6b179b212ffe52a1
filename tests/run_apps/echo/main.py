"""Answers every GET with the variables the platform sets and the request's headers, as JSON."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

NAMES = ("GAE_INSTANCE", "GAE_MEMORY_MB", "GAE_SERVICE", "GAE_VERSION", "GOOGLE_CLOUD_PROJECT", "PORT", "GREETING")


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/ready", "/live"):
            body = b"ok"
        else:
            body = json.dumps({"env": {n: os.environ.get(n) for n in NAMES}, "headers": dict(self.headers.items())}).encode()
            print("echo: answered " + self.path, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


print("echo: listening on $PORT=" + os.environ["PORT"], flush=True)
print("echo: a line on stderr", file=sys.stderr, flush=True)
HTTPServer(("", int(os.environ["PORT"])), Echo).serve_forever()
