// Benchmark 6: the same one-canary check as `wsmon-probe once --until-first-payload`: connect,
// check the first message (it must carry a sequence), close at once. TIMEOUT_MS bounds the
// wait, as `--duration` does for the prober.
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { check } from 'k6';

export const options = { vus: 1, iterations: 1, thresholds: { checks: ['rate==1'] } };

export default function () {
  const ws = new WebSocket(__ENV.URL);
  let done = false;
  const finish = () => {
    done = true;
    clearTimeout(limit);
    ws.close();
  };
  const limit = setTimeout(() => {
    check(null, { 'first payload arrived': () => false });
    finish();
  }, Number(__ENV.TIMEOUT_MS));
  ws.onmessage = (m) => {
    // Messages already in flight may still arrive while closing.
    if (done) return;
    check(m.data, {
      'first payload has a sequence': (d) => {
        try {
          return Number.isInteger(JSON.parse(d).seq);
        } catch (_) {
          return false;
        }
      },
    });
    finish();
  };
  ws.onerror = (e) => {
    check(e, { 'no error': () => false });
    if (!done) finish();
  };
}
