// A Node `ws` broadcast server, the upstream of wsmon-proxy's tests. Usage: node node_server.js
// Prints "READY <port>" once listening on 127.0.0.1 (a free port).
//   ws  /ws, /rooms/<id>: every message is broadcast to every client on the path (so a lone
//       client gets its own messages back, byte for byte, compressed when negotiated);
//       "close:<code>" closes that client with <code>; "blast:<n>:<bytes>" sends n messages.
//   ws  /ticks: a JSON tick {"seq":n,"ts":<Unix ms>} every 100 ms (one sequence for all
//       clients) and a ping every 500 ms, for stamp pointers and ping RTT.
//   ws  /forbidden: refused with 403.
//   GET /stream: a chunked body whose second chunk waits for GET /release.
//   POST /echo: streams the request body back.  GET /headers: the request headers as JSON.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

let release = null;
const server = http.createServer((req, res) => {
  if (req.url === '/stream') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('chunk-1\n');
    release = () => res.end('chunk-2\n');
  } else if (req.url === '/release') {
    if (release) release();
    res.end('released\n');
  } else if (req.url === '/echo' && req.method === 'POST') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  } else if (req.url === '/headers') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.headers));
  } else {
    res.writeHead(404);
    res.end();
  }
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: { threshold: 0 } });
server.on('upgrade', (req, socket, head) => {
  if (req.url === '/forbidden') {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.path = req.url;
    wss.emit('connection', ws, req);
  });
});

let tickSeq = 0;
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (ws.path === '/ticks') {
    const open = () => ws.readyState === 1;
    const ticks = setInterval(() => open() && ws.send(JSON.stringify({ seq: ++tickSeq, ts: Date.now() })), 100);
    const pings = setInterval(() => open() && ws.ping('hb'), 500);
    ws.on('close', () => { clearInterval(ticks); clearInterval(pings); });
  }
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? '' : data.toString();
    if (text.startsWith('close:')) {
      ws.close(Number(text.slice(6)), 'asked to');
      return;
    }
    if (text.startsWith('blast:')) {
      const [, n, size] = text.split(':').map(Number);
      const payload = Buffer.alloc(size, 120);
      for (let i = 0; i < n; i++) ws.send(payload, { binary: true });
      return;
    }
    for (const peer of wss.clients) {
      if (peer.path === ws.path && peer.readyState === 1) peer.send(data, { binary: isBinary });
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`READY ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
