"""Serves, but its readiness path answers 503 (a database it waits for never comes)."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class NotReady(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if self.path == "/readiness_check" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()


HTTPServer(("", int(os.environ["PORT"])), NotReady).serve_forever()
