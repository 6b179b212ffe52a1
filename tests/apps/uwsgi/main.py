import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return {"app": "uwsgi", "port": os.environ.get("PORT"), "service": os.environ.get("GAE_SERVICE")}
