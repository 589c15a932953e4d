import type { FastifyRequest } from 'fastify';
import { invalidRequest } from '../../domain/errors.js';
import { isJsonObject, knownFields } from '../../domain/fields.js';

/**
 * The body of an admin write that takes fields: a JSON object, else 400 before anything is read or
 * written. Which fields it may hold is the domain's to say (the CLI and the library call it too).
 */
export function objectBody(request: FastifyRequest): Record<string, unknown> {
  if (!isJsonObject(request.body)) throw invalidRequest('the request body must be a JSON object');
  return request.body;
}

/** An admin write that takes no fields (app keys, signing keys): no body, or `{}`. */
export function noFields(request: FastifyRequest): void {
  if (request.body !== undefined) knownFields('the request body', request.body, { known: [] });
}
