// The reference from the issue: a plain Fastify + pg + jose route reading one row by id
// after verifying a JWT — what a competent hand-rolled service does.
import Fastify from 'fastify';
import { jwtVerify } from 'jose';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const secret = new TextEncoder().encode(process.env.SECRET);
const app = Fastify({ logger: false });
app.get<{ Params: { id: string } }>('/projects/:id', async (request, reply) => {
  const token = request.headers.authorization?.slice(7) ?? '';
  try {
    await jwtVerify(token, secret);
  } catch {
    return reply.code(401).send({ error: 'unauthorized' });
  }
  const { rows } = await pool.query('SELECT * FROM projects WHERE id = $1', [request.params.id]);
  return rows[0] ?? reply.code(404).send({ error: 'not found' });
});
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
