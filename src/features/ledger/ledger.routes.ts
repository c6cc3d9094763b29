// The ledger API (/api/v1/ledger). Checkpoints, the public key and proofs are public:
// they are hashes and signatures, and anyone may audit the log. Leaf content is shown
// only inside its own organization (see ledger.service.ts and ledger.export.ts).
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppDeps } from '../../platform/deps.js';
import { NotFoundError } from '../../platform/errors.js';
import { authOf } from '../../platform/http/auth-guard.js';
import { errorResponses } from '../../platform/http/schemas.js';
import { checkpointView } from './ledger.checkpoints.js';
import { exportChunks, prepareExport } from './ledger.export.js';
import { loadLedgerIdentity } from './ledger.identity.js';
import { checkIntegrity } from './ledger.integrity.js';
import { LEDGER_TOPIC } from './ledger.loops.js';
import { CheckpointSizes, consistencyProof, inclusionProof, requireLatestCheckpoint } from './ledger.proofs.js';
import { checkpointAtSize } from './ledger.queries.js';
import {
  CheckpointSchema,
  ConsistencyProofSchema,
  ConsistencyQuery,
  EntrySchema,
  ExportQuery,
  IndexParams,
  InclusionProofSchema,
  InclusionQuery,
  IntegritySchema,
  PublicKeySchema,
  SizeParams,
} from './ledger.schemas.js';
import { getEntry, publicKeyView } from './ledger.service.js';

const b64 = (hashes: Buffer[]) => hashes.map((h) => h.toString('base64'));
const text = (description: string, type: string) => ({ description, content: { [type]: { schema: Type.String() } } });

export function ledgerRoutes(deps: AppDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const { db } = deps;
    const identity = await loadLedgerIdentity(db, deps.config.instanceName);
    const tags = ['ledger'];
    const open = { permission: 'public' as const };
    const sizes = new CheckpointSizes();
    const unsubscribe = deps.bus.subscribe(LEDGER_TOPIC, (event) => {
      if (event.type === 'ledger.checkpoint') sizes.note((event.data as { size: number }).size);
    });
    app.addHook('onClose', async () => unsubscribe());

    app.get(
      '/checkpoint',
      {
        config: open,
        schema: {
          tags,
          summary: 'The latest signed checkpoint (JSON; the raw note is at /checkpoint.txt)',
          response: { 200: CheckpointSchema, ...errorResponses(503) },
        },
      },
      async () => checkpointView(await requireLatestCheckpoint(db)),
    );

    app.get(
      '/checkpoint.txt',
      {
        config: open,
        schema: {
          tags,
          summary: 'The latest signed checkpoint as a C2SP signed note (text/plain)',
          response: { 200: text('Signed note', 'text/plain'), ...errorResponses(503) },
        },
      },
      async (_request, reply) => reply.type('text/plain; charset=utf-8').send((await requireLatestCheckpoint(db)).note),
    );

    app.get(
      '/checkpoints/:size',
      {
        config: open,
        schema: {
          tags,
          summary: 'The checkpoint cut at this tree size, if one was',
          params: SizeParams,
          response: { 200: CheckpointSchema, ...errorResponses(404) },
        },
      },
      async (request) => {
        const row = await checkpointAtSize(db, request.params.size);
        if (!row) throw new NotFoundError(`A checkpoint at size ${request.params.size}`, 'checkpoint_not_found');
        return checkpointView(row);
      },
    );

    app.get(
      '/public-key',
      {
        config: open,
        schema: {
          tags,
          summary: "The key that signs this instance's checkpoints",
          response: { 200: PublicKeySchema, ...errorResponses() },
        },
      },
      async () => publicKeyView(identity),
    );

    app.get(
      '/proofs/inclusion',
      {
        config: open,
        schema: {
          tags,
          summary: 'Inclusion proof of a leaf in the tree of a checkpointed size',
          querystring: InclusionQuery,
          response: { 200: InclusionProofSchema, ...errorResponses(503) },
        },
      },
      async (request) => {
        const proof = await inclusionProof(db, request.query.index, request.query.size, sizes);
        return { ...proof, leaf_hash: proof.leaf_hash.toString('base64'), path: b64(proof.path) };
      },
    );

    app.get(
      '/proofs/consistency',
      {
        config: open,
        schema: {
          tags,
          summary: 'Consistency proof between two checkpointed tree sizes',
          querystring: ConsistencyQuery,
          response: { 200: ConsistencyProofSchema, ...errorResponses(503) },
        },
      },
      async (request) => {
        const proof = await consistencyProof(db, request.query.old_size, request.query.new_size, sizes);
        return { ...proof, path: b64(proof.path) };
      },
    );

    app.get(
      '/entries/:index',
      {
        config: open,
        schema: {
          tags,
          summary: "One leaf with its inclusion proof; content only for its organization's auditors",
          params: IndexParams,
          response: { 200: EntrySchema, ...errorResponses(404) },
        },
      },
      // Public, but a valid caller of the leaf's organization sees more (see getEntry).
      async (request) => getEntry(db, request.authContext, request.params.index),
    );

    app.get(
      '/export',
      {
        config: { permission: 'audit:read' },
        schema: {
          tags,
          summary: 'The log as NDJSON: a checkpoint header line, then one line per leaf',
          querystring: ExportQuery,
          response: {
            200: text('Header line, then {index, leaf_hash, kind, content?} per leaf', 'application/x-ndjson'),
            ...errorResponses(403, 503),
          },
        },
      },
      async (request, reply) => {
        const auth = authOf(request);
        const header = await prepareExport(db, request.query);
        const stream = Readable.from(exportChunks(db, auth.orgId, header));
        // The schema documents the body as text; Fastify sends a stream as is, unserialized.
        return reply
          .type('application/x-ndjson')
          .header('cache-control', 'no-store')
          .send(stream as unknown as string);
      },
    );

    app.get(
      '/integrity',
      {
        config: { permission: 'audit:read' },
        schema: {
          tags,
          summary: 'Recheck the whole log against its stored tree, audit records and signed checkpoints',
          response: { 200: IntegritySchema, ...errorResponses(403) },
        },
      },
      async () => checkIntegrity(db, identity.signer.publicKey),
    );
  };
}
