import os

from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def index():
    return {
        "scheme": request.scheme,
        "service": os.environ.get("GAE_SERVICE"),
        "greeting": os.environ.get("GREETING"),
        "port": os.environ.get("PORT"),
    }
