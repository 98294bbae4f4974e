"""A foreign peer for the example feed: Python `websockets`, not written by wsmon.

Reads the snapshot and some ticks, asks for the head twice, closes with 1000 and reports what
it saw as `received=N head_requests=H bytes_sent=B`.
"""
import asyncio
import json
import sys

import websockets


async def main(url: str) -> None:
    received = 0
    bytes_sent = 0
    heads = 0
    async with websockets.connect(url, open_timeout=5, close_timeout=5) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert snapshot["type"] == "snapshot", snapshot
        received += 1
        for _ in range(2):
            request = json.dumps({"op": "head"})
            await ws.send(request)
            bytes_sent += len(request.encode())
            heads += 1
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                received += 1
                if msg["type"] == "head":
                    break
        for _ in range(5):
            await asyncio.wait_for(ws.recv(), 5)
            received += 1
        await ws.close(code=1000, reason="done")
        # Messages in flight when we closed: websockets hands them over until the close.
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
                received += 1
        except websockets.ConnectionClosed:
            pass
    print(f"received={received} head_requests={heads} bytes_sent={bytes_sent}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
