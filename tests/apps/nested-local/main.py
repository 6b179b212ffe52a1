import os

from flask import Flask
from greeting import hello

app = Flask(__name__)


@app.route("/")
def index():
    return {"app": "nested-local", "greeting": hello(), "port": os.environ.get("PORT"), "service": os.environ.get("GAE_SERVICE")}
