"""A Python `websockets` echo server, an upstream of wsmon-proxy's tests.

Usage: python3 python_server.py. Prints "READY <port>" once listening on 127.0.0.1, then one
"CLOSED <code>" line per connection that ended (the code it received, 1006 without one).
Messages are echoed; "close:<code>" closes that connection with <code>.
"""

import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws):
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                await ws.close(int(message[6:]), "asked to")
                break
            await ws.send(message)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    rcvd = ws.protocol.close_rcvd
    print(f"CLOSED {rcvd.code if rcvd else 1006}", flush=True)


async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
