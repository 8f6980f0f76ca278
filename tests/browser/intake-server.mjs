// A small receiving server on 127.0.0.1 that stands in for the intake in the JS and browser
// tests: it answers CORS preflights, accepts NDJSON, JSON arrays and text/plain bodies on
// POST /v1/events, checks the write key, can answer 500 to the first N posts, and keeps
// every item it accepted (duplicates included, so tests can assert "exactly once").
import { createServer } from 'node:http';

export async function startIntake({ failFirst = 0, writeKey } = {}) {
  const state = { items: [], posts: [], failed: 0, bodies: [] };
  let failLeft = failFirst;
  const server = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', req.headers.origin ?? '*');
    res.setHeader('access-control-allow-headers', 'content-type, authorization');
    res.setHeader('access-control-allow-methods', 'POST, OPTIONS');
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    if (req.method !== 'POST' || url.pathname !== '/v1/events') {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const post = {
        contentType: req.headers['content-type'] ?? '',
        key: url.searchParams.get('key'),
        bytes: Buffer.byteLength(body),
        status: 200,
      };
      state.posts.push(post);
      if (writeKey !== undefined && post.key !== writeKey) {
        post.status = 401;
        res.writeHead(401).end('bad write key');
        return;
      }
      if (failLeft > 0) {
        failLeft -= 1;
        state.failed += 1;
        post.status = 500;
        res.writeHead(500).end('try again');
        return;
      }
      let items;
      try {
        const text = body.trim();
        items = text.startsWith('[')
          ? JSON.parse(text)
          : text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
      } catch (e) {
        post.status = 400;
        res.writeHead(400).end(`bad body: ${e.message}`);
        return;
      }
      post.count = items.length;
      state.items.push(...items);
      state.bodies.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: items.length }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1/events`,
    state,
    /** Items of a run (by the `run` attribute), excluding client reports. */
    itemsOf(run) {
      return state.items.filter((i) => i.run === run);
    },
    /** Polls (at most `tries` × 50 ms) until `pred()` holds; returns whether it did. */
    async until(pred, tries = 200) {
      for (let i = 0; i < tries; i++) {
        if (pred()) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return pred();
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
