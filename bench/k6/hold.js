// Benchmark 4: the smallest k6 script that holds N WebSocket streams and receives their
// messages. One VU opens them all on its event loop (k6/experimental/websockets), k6's most frugal shape;
// one VU per stream costs far more.
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';

export const options = { vus: 1, iterations: 1 };

export default function () {
  const n = Number(__ENV.N);
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(__ENV.URL);
    ws.onmessage = () => {};
    setTimeout(() => ws.close(), Number(__ENV.HOLD_MS));
  }
}
