// A minimal Drizzle app of one's own, started by the entrypoint after it migrated drizzle/:
//
//   GET /health  `select 1`: 200 {"status":"ok"}, or 503 when the database cannot be reached
//   GET /notes   the notes, newest first, read with drizzle-orm (so the migrated schema is the app's)
//
// PORT (default 3000) and DATABASE_URL come from the environment. SIGTERM closes the server and
// the pool, then exits 0.
import http from 'node:http';
import { desc } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Pool } from 'pg';
import { notes } from './schema';

const port = Number.parseInt(process.env.PORT ?? '3000', 10);
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
pool.on('error', (err) => console.error(`[db] ${err.message}`));
const db = drizzle(pool);

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (req.method === 'GET' && req.url === '/health') {
    await pool.query('select 1');
    send(res, 200, { status: 'ok' });
  } else if (req.method === 'GET' && req.url === '/notes') {
    send(res, 200, await db.select().from(notes).orderBy(desc(notes.createdAt)));
  } else {
    send(res, 404, { error: 'not found' });
  }
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err: Error) => send(res, 503, { status: 'error', error: err.message }));
});

server.listen(port, () => {
  console.log(`minimal-app listening on port ${port}`);
});

process.on('SIGTERM', () => {
  server.close(() => {
    pool.end().finally(() => process.exit(0));
  });
});
