// A Node `ws` client for wsmon-proxy's tests. Usage: node node_client.js <url> <mode>
//   close:<code>  send "hello", await its echo, close with <code>, await the close
//   drop          send "hello", await its echo, destroy the TCP socket (no close frame)
//   identity      send payloads of many sizes with permessage-deflate offered; check each
//                 echo is byte-identical
//   send:<text>   send <text>, then wait for the server to close
// Prints one JSON line: {"ok":true,...} or {"ok":false,"error":...}; exit code 0 iff ok.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const [url, mode] = process.argv.slice(2);
const done = (result) => {
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
};
setTimeout(() => done({ ok: false, error: 'timeout' }), 20000);

const ws = new WebSocket(url, { perMessageDeflate: mode === 'identity' ? { threshold: 0 } : false });
ws.on('error', (err) => done({ ok: false, error: String(err) }));
ws.on('unexpected-response', (req, res) => done({ ok: false, status: res.statusCode }));

ws.on('open', async () => {
  const next = () => new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
  if (mode === 'identity') {
    const sizes = [0, 1, 125, 126, 127, 65535, 65536, 70000, 1 << 20];
    for (const size of sizes) {
      for (const binary of [true, false]) {
        const payload = binary ? crypto.randomBytes(size) : Buffer.from('é'.repeat(size >> 1) + 'x'.repeat(size & 1));
        const echo = next();
        ws.send(payload, { binary });
        const { data, isBinary } = await echo;
        if (isBinary !== binary || !Buffer.from(data).equals(payload)) {
          return done({ ok: false, error: `payload of ${size} bytes (binary ${binary}) differs` });
        }
      }
    }
    ws.close(1000);
    ws.on('close', () => done({ ok: true, extensions: ws.extensions, messages: sizes.length * 2 }));
    return;
  }
  if (mode.startsWith('send:')) {
    ws.send(mode.slice(5));
    ws.on('close', (code) => done({ ok: true, code }));
    return;
  }
  const echo = next();
  ws.send('hello');
  await echo;
  if (mode === 'drop') {
    ws._socket.destroy();
    return done({ ok: true });
  }
  const code = Number(mode.slice(6));
  ws.on('close', (got) => done({ ok: true, code: got }));
  ws.close(code, 'bye');
});
