def name():
    return "api"
