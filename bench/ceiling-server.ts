// The ceiling: a bare Fastify server answering a constant JSON document.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
const body = { id: '6f1c1e6e-8d1b-4a55-9c3a-2f0e1d7b5a10', name: 'constant', description: 'a constant JSON answer' };
app.get('/constant', async () => body);
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
