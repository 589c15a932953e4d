import type { FastifyReply } from 'fastify';
import type { Issued } from '../../domain/engine.js';
import type { RotorError } from '../../domain/errors.js';
import { sendJson } from '../../http/reply.js';

/** Abitmedia's messages, byte-exact (UTF-8) as SPEC §4.4 gives them. */
export const MESSAGES = {
  refreshed: 'Token de refresco exitoso',
  loggedIn: 'Autenticación exitosa',
  badCredentials: 'Autenticación fallida, credenciales incorrectas',
  badRefreshToken: 'Token de refresco inválido o expirado',
  unknownApp: 'Aplicación no encontrada',
  tooLarge: 'La solicitud es demasiado grande',
  unavailable: 'Servicio no disponible temporalmente, intente de nuevo',
  tooManyRequests: 'Demasiadas solicitudes, intente de nuevo más tarde',
  internal: 'Error interno del servidor',
  originNotAllowed: 'Origen no permitido',
  methodNotAllowed: 'Método no permitido',
} as const;

export function tokensBody(issued: Issued, message: string): Record<string, unknown> {
  return {
    success: true,
    status: 200,
    message,
    accessToken: issued.accessToken,
    refreshToken: issued.refreshToken,
    expiresIn: issued.expiresIn,
  };
}

function statusOf(err: RotorError): { status: number; message: string } {
  switch (err.kind) {
    case 'client_auth':
      // The login's credentials; anything else (a confidential app's refresh) is the refresh answer.
      return err.code === 'invalid_credentials' ? { status: 401, message: MESSAGES.badCredentials } : { status: 400, message: MESSAGES.badRefreshToken };
    case 'not_found':
      return { status: 404, message: MESSAGES.unknownApp };
    case 'bad_input':
      if (err.code === 'payload_too_large') return { status: 413, message: MESSAGES.tooLarge };
      return err.code === 'method_not_allowed' ? { status: 405, message: MESSAGES.methodNotAllowed } : { status: 400, message: MESSAGES.badRefreshToken };
    case 'unavailable':
      return { status: 503, message: MESSAGES.unavailable };
    case 'rate_limited':
      return { status: 429, message: MESSAGES.tooManyRequests };
    case 'forbidden':
      return { status: 403, message: MESSAGES.originNotAllowed };
    case 'internal':
      return { status: 500, message: MESSAGES.internal };
    case 'refused':
    case 'conflict':
      // Anything wrong with a refresh request (no token, a bad one, a bad body) is the one answer.
      return { status: 400, message: MESSAGES.badRefreshToken };
  }
}

/** `{"success":false,"status":<http>,"message":"…"}`. */
export function sendAbitmediaError(reply: FastifyReply, err: RotorError): FastifyReply {
  const { status, message } = statusOf(err);
  return sendJson(reply.header('Cache-Control', 'no-store'), status, { success: false, status, message });
}
