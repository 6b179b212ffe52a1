from aiohttp import web


async def index(request):
    return web.json_response({"app": "aiohttp"})


app = web.Application()
app.router.add_get("/", index)
