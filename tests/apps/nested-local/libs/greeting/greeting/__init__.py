def hello():
    return "hello from a local package"
