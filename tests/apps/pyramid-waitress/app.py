from pyramid.config import Configurator
from pyramid.response import Response


def main():
    with Configurator() as config:
        config.add_route("index", "/")
        config.add_view(lambda request: Response("ok"), route_name="index")
        return config.make_wsgi_app()
