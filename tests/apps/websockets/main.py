import asyncio
import os

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    async with serve(echo, "0.0.0.0", int(os.environ.get("PORT", "8080"))) as server:
        await server.serve_forever()


asyncio.run(main())
