'use strict';
// Minimal stand-in for the compiled NestJS app (`node dist/src/main`).
// Plain CommonJS, committed as-is: no build step is needed to run it.
//
//   PORT          port to listen on (default 10000, Render's default)
//   DATABASE_URL  PostgreSQL connection string used by GET /health
//
// GET /health runs `select 1` and answers 200 {"status":"ok"}, or 503 when the
// database cannot be reached. SIGTERM/SIGINT close the server and the pool,
// then exit 0.
const http = require('node:http');
const { Pool } = require('pg');

const port = Number.parseInt(process.env.PORT || '10000', 10);
const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: 5,
  connectionTimeoutMillis: 5000,
});
// An idle client losing its connection must not crash the app.
pool.on('error', (err) => {
  console.error(`[db] idle client error: ${err.message}`);
});

function sendJson(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  if (req.method === 'GET' && path === '/health') {
    pool
      .query('select 1')
      .then(() => sendJson(res, 200, { status: 'ok' }))
      .catch((err) => sendJson(res, 503, { status: 'error', error: err.message }));
    return;
  }
  sendJson(res, 404, { statusCode: 404, message: `Cannot ${req.method} ${path}` });
});

server.listen(port, () => {
  console.log(`🚀 Application started on port ${port}`);
});

let shuttingDown = false;
function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  // Force-exit if something keeps the event loop alive for too long.
  setTimeout(() => process.exit(0), 5000).unref();
  server.close(() => {
    pool.end().finally(() => process.exit(0));
  });
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
