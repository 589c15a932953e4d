// Issue 16: every envelope maps error KINDS, not codes. Whatever code a failure carries, its kind decides
// the class of answer: a store outage is 503 in every API (never a client error such as OAuth's
// invalid_client), a fault of Rotor's is 500, and a refusal is never a 5xx.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERROR_KINDS, RotorError, StoreUnavailableError, type ErrorCode } from '../../src/domain/errors.js';
import { oauth2Api } from '../../src/http/oauth2/routes.js';
import { sendAbitmediaError } from '../../src/dialects/abitmedia/envelope.js';
import { sendFibError } from '../../src/dialects/fib/envelope.js';
import { sendFloliveError } from '../../src/dialects/flolive/envelope.js';
import { renderJwtPlusError } from '../../src/dialects/jwtplus/envelope.js';
import { renderVerifikError } from '../../src/dialects/verifik/envelope.js';
import { sendProblem } from '../../src/http/reply.js';

function answer(render: (err: RotorError, reply: FastifyReply) => unknown, err: RotorError): { status: number; body: string } {
  const out = { status: 0, body: '' };
  const reply = {
    code(status: number) { out.status = status; return reply; },
    header() { return reply; },
    send(body: string) { out.body = body; return reply; },
  };
  render(err, reply as unknown as FastifyReply);
  return out;
}

const request = { log: { info() {} } } as unknown as FastifyRequest;
const ENVELOPES: Record<string, (err: RotorError, reply: FastifyReply) => unknown> = {
  native: (err, reply) => sendProblem(reply, err),
  oauth2: (err, reply) => oauth2Api.renderError(err, request, reply),
  abitmedia: (err, reply) => sendAbitmediaError(reply, err),
  fib: (err, reply) => sendFibError(reply, err),
  flolive: (err, reply) => sendFloliveError(reply, err),
  jwtplus: (err, reply) => renderJwtPlusError(err, reply, '/app/:app_id/renew'),
  verifik: (err, reply) => renderVerifikError(err, reply, { now: 0, signatureMessage: 'Certified by Rotor' }),
};

describe('error kinds', () => {
  it('every catalogue code has a kind', () => {
    expect(Object.keys(ERROR_KINDS).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    expect(new StoreUnavailableError().kind).toBe('unavailable');
  });

  for (const [api, render] of Object.entries(ENVELOPES)) {
    it(`${api}: the kind decides the class of answer (store down 503, fault 500, refusals and bad input 4xx)`, () => {
      expect(answer(render, new StoreUnavailableError()).status).toBe(503);
      expect(answer(render, new RotorError('internal_error', 'boom')).status).toBe(500);
      for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
        const kind = ERROR_KINDS[code];
        if (kind === 'unavailable' || kind === 'internal') continue;
        const { status } = answer(render, new RotorError(code, 'detail'));
        expect(status, `${api} ${code}`).toBeGreaterThanOrEqual(400);
        expect(status, `${api} ${code}`).toBeLessThan(500);
      }
    });
  }

  it('oauth2: a store outage is temporarily_unavailable, never invalid_client', () => {
    expect(JSON.parse(answer(ENVELOPES.oauth2!, new StoreUnavailableError()).body)).toMatchObject({ error: 'temporarily_unavailable' });
    expect(JSON.parse(answer(ENVELOPES.oauth2!, new RotorError('invalid_app_key', 'x')).body)).toMatchObject({ error: 'invalid_client' });
  });
});
