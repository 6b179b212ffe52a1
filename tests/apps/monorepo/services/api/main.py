from common.util import name
from flask import Flask

app = Flask(name())
