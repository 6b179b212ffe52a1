import os

import tornado.ioloop
import tornado.web


class Main(tornado.web.RequestHandler):
    def get(self):
        self.write({"app": "tornado"})


tornado.web.Application([("/", Main)]).listen(int(os.environ["PORT"]))
tornado.ioloop.IOLoop.current().start()
