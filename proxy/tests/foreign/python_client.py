"""A Python `websockets` client for wsmon-proxy's tests.

Usage: python3 python_client.py <url> <mode>, mode as in node_client.js (close:<code>, drop,
send:<text>). Prints one JSON line; exit code 0 iff ok.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def main(url, mode):
    try:
        async with connect(url, compression=None, open_timeout=10) as ws:
            if mode.startswith("send:"):
                await ws.send(mode[5:])
                try:
                    await ws.recv()
                except ConnectionClosed:
                    pass
                rcvd = ws.protocol.close_rcvd
                return {"ok": True, "code": rcvd.code if rcvd else 1006}
            await ws.send("hello")
            if await ws.recv() != "hello":
                return {"ok": False, "error": "bad echo"}
            if mode == "drop":
                ws.transport.abort()
                return {"ok": True}
            await ws.close(int(mode[6:]), "bye")
            return {"ok": True, "code": ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else 1006}
    except InvalidStatus as e:
        return {"ok": False, "status": e.response.status_code}


if __name__ == "__main__":
    result = asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 20))
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)
