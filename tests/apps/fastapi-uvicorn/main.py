import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index():
    return {"app": "fastapi-uvicorn", "port": os.environ.get("PORT"), "service": os.environ.get("GAE_SERVICE")}
