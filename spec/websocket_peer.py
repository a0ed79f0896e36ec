# Python's websockets as the peer of gl.websocket (spec/websocket_spec.lua):
#   websocket_peer.py client PORT   runs a suite against a gl server, prints key=repr lines
#   websocket_peer.py server        serves on a free port, prints "PORT n", then events
import asyncio
import sys

import websockets


async def client(port):
    base = f"ws://127.0.0.1:{port}"
    out = {}
    async with websockets.connect(base + "/first", max_size=2**21) as ws:
        await ws.send("héllo")
        out["text"] = await ws.recv()
        await ws.send(b"\x00\x01\xff")
        r = await ws.recv()
        out["binary"] = r.hex() if isinstance(r, bytes) else "not bytes"
        big = bytes(i % 251 for i in range(1000000))
        await ws.send(big)
        out["big"] = (await ws.recv()) == big
        for i in range(100):
            await ws.send(f"m{i}")
        got = [await ws.recv() for _ in range(100)]
        out["order"] = got == [f"m{i}" for i in range(100)]
        await ws.send(["frag", "men", "ted €"])
        out["frag"] = await ws.recv()
        await ws.send([b"ab", b"cd"])
        out["fragbin"] = (await ws.recv()).hex()
        pong = await ws.ping(b"pp")
        await asyncio.wait_for(pong, 5)
        out["pong"] = True
        await ws.close(4001, "client bye")
        out["close_code"] = ws.close_code
    for path in ("/close", "/return", "/error"):
        async with websockets.connect(base + path) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 5)
                out[path] = "no close"
            except websockets.ConnectionClosed as e:
                out[path] = [e.code, e.reason]

    async def one(i):
        async with websockets.connect(base + "/echo") as ws:
            await ws.send(f"c{i}")
            return await ws.recv()

    res = await asyncio.gather(*[one(i) for i in range(30)])
    out["concurrent"] = res == [f"c{i}" for i in range(30)]
    try:
        async with websockets.connect(base + "/reject"):
            out["reject"] = "accepted"
    except websockets.InvalidStatusCode as e:
        out["reject"] = e.status_code
    for k, v in out.items():
        print(f"{k}={v!r}", flush=True)


async def handler(ws, path):
    if path == "/echo":
        async for m in ws:
            await ws.send(m)
    elif path == "/close":
        await ws.close(4003, "server bye")
    elif path == "/frag":
        await ws.send(["a" * 10, "b" * 10, "c €"])
        await ws.send([b"\x01", b"\x02"])
        async for m in ws:
            pass
    elif path == "/ping":
        pong = await ws.ping(b"x")
        await asyncio.wait_for(pong, 5)
        await ws.send("ponged")
        async for m in ws:
            pass
    elif path == "/record":
        try:
            async for m in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        print(f"CLOSED {ws.close_code} {ws.close_reason}", flush=True)


async def server():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=2**21) as srv:
        print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        asyncio.run(client(int(sys.argv[2])))
    else:
        asyncio.run(server())
