// Benchmark 6: the same one-canary check as `wsmon-probe once --duration 100ms`: connect,
// require a first payload, keep the stream HOLD_MS, close.
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';
import { check } from 'k6';

export const options = { vus: 1, iterations: 1, thresholds: { checks: ['rate==1'] } };

export default function () {
  const ws = new WebSocket(__ENV.URL);
  let got = false;
  ws.onmessage = (m) => {
    got = true;
  };
  ws.onopen = () => {
    setTimeout(() => {
      check(got, { 'first payload arrived': (g) => g });
      ws.close();
    }, Number(__ENV.HOLD_MS));
  };
  ws.onerror = (e) => {
    check(e, { 'no error': () => false });
  };
}
