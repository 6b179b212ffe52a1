"""What gunicorn made of the request: its scheme (from X-Forwarded-Proto, when gunicorn trusts it) and the client."""

import json


def app(environ, start_response):
    body = json.dumps({"url_scheme": environ["wsgi.url_scheme"], "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
