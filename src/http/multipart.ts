import { Busboy, type BusboyInstance } from '@fastify/busboy';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { RotorError } from '../domain/errors.js';

/** How many parts a multipart body may hold, and how large each may be (the whole body is the route's bodyLimit). */
export interface MultipartLimits {
  /** Text fields. */
  readonly fields: number;
  /** File parts (their content is read as UTF-8 text). */
  readonly files: number;
  /** Bytes of one field's value or one file's content. */
  readonly valueSize: number;
}

const tooLarge = () => new RotorError('payload_too_large', 'the multipart body is larger than its limits');
const malformed = () => new RotorError('invalid_request', 'the multipart body is malformed');

/**
 * `multipart/form-data` bodies become a plain object of strings, as url-encoded forms do (form.ts).
 * The body is read whole first, through fastify's own reader: so the route's bodyLimit holds for it
 * (by Content-Length before a byte is read, or by the bytes read when chunked) and the handler runs
 * only once the entire body has arrived. Streaming the parts to the handler, as @fastify/multipart did,
 * let a request past the limit act on its first part while the rest was still being read (D-01).
 */
export function registerMultipartParser(app: FastifyInstance, limits: MultipartLimits): void {
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (request, body, done) => {
    parseMultipart(request.headers, body as Buffer, limits).then((fields) => done(null, fields), (err: unknown) => done(err as Error, undefined));
  });
}

/**
 * The fields of a buffered multipart body. A part over its size, one part too many, or a repeated name
 * is refused, never truncated or overwritten; anything busboy cannot read is malformed.
 */
function parseMultipart(headers: IncomingHttpHeaders, body: Buffer, limits: MultipartLimits): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const out: Record<string, string> = Object.create(null);
    let failure: RotorError | null = null;
    const fail = (err: RotorError) => { failure ??= err; };
    const put = (name: string, value: string) => {
      if (Object.prototype.hasOwnProperty.call(out, name)) fail(new RotorError('invalid_request', `the field "${name.slice(0, 40)}" is repeated`));
      else out[name] = value;
    };
    let parser: BusboyInstance;
    try {
      parser = new Busboy({
        headers: headers as IncomingHttpHeaders & { 'content-type': string },
        limits: { fields: limits.fields, files: limits.files, parts: limits.fields + limits.files, fieldSize: limits.valueSize, fileSize: limits.valueSize, fieldNameSize: 100, headerPairs: 50 },
      });
    } catch {
      reject(malformed());
      return;
    }
    const reading: Promise<void>[] = [];
    parser.on('field', (name: string, value: string, _nameTruncated: boolean, valueTruncated: boolean) => {
      if (valueTruncated) fail(tooLarge());
      else put(name, value);
    });
    parser.on('file', (name, stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('limit', () => fail(tooLarge()));
      reading.push(new Promise((settled) => {
        stream.on('end', () => {
          if (!stream.truncated) put(name, Buffer.concat(chunks).toString('utf8'));
          settled();
        });
        // A body that ends inside a file part errors the part's stream too: unheard, that error is an
        // uncaught exception that ends the process (found by a second review).
        stream.on('error', () => {
          fail(malformed());
          settled();
        });
      }));
    });
    for (const limit of ['fieldsLimit', 'filesLimit', 'partsLimit']) parser.on(limit, () => fail(tooLarge()));
    parser.on('error', () => reject(failure ?? malformed()));
    parser.on('finish', () => {
      void Promise.all(reading).then(() => (failure ? reject(failure) : resolve(out)));
    });
    parser.end(body);
  });
}
