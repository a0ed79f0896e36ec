# bench: Python websockets' echo server (asyncio), the peer of bench/ws_echo.lua.
# usage: /usr/bin/python3 bench/ws_echo_peer.py; prints "listening on port N"
import asyncio
import websockets


async def echo(ws, path):
    async for m in ws:
        await ws.send(m)


async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, compression=None) as srv:
        print(f"listening on port {srv.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


asyncio.run(main())
