/**
 * Plain HTTP routes of a relay node, served by every transport through `TransportHooks.http`:
 *
 * | route              | answer                                                                    |
 * |--------------------|---------------------------------------------------------------------------|
 * | `GET /healthz`     | 200 `{status: "ok"}` while the process serves requests                    |
 * | `GET /readyz`      | 200 when started, not shutting down and its backends answer; else 503     |
 * | `GET /metrics`     | Prometheus text format                                                    |
 * | `GET /version`     | `{name, version, protocol, node, transport, runtime}`                     |
 * | `/v1/admin/*`, `POST /v1/activate` | the admin/enrolment API (relay/src/auth)                   |
 *
 * Errors are JSON `{code, message}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROTOCOL_VERSION } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { HttpApiHandler } from './auth/types.js';
import type { RelayMetrics } from './observability/metrics.js';

export interface HttpRoutesDeps {
  metrics: RelayMetrics;
  logger: Logger;
  /** Readiness of the node and its ports. */
  ready: () => boolean;
  version: {
    name: string;
    version: string;
    node: string;
    transport: string;
    /** The WebTransport listener clients may prefer (port on this host; dev certificate hash). */
    readonly webTransport?: { http3: boolean; port: number; certHash?: string } | undefined;
  };
  /** The admin API, when wired (it answers its own paths and returns false for others). */
  api: HttpApiHandler | undefined;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

export function createHttpHandler(d: HttpRoutesDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const method = req.method ?? 'GET';
    const isGet = method === 'GET' || method === 'HEAD';
    try {
      switch (path) {
        case '/healthz':
          if (!isGet) break;
          json(res, 200, { status: 'ok' });
          return;
        case '/readyz': {
          if (!isGet) break;
          const ready = d.ready();
          json(res, ready ? 200 : 503, ready ? { status: 'ready' } : { code: 'not_ready', message: 'not ready' });
          return;
        }
        case '/metrics':
          if (!isGet) break;
          d.metrics.registry.metrics().then(
            (text) => {
              res.writeHead(200, { 'content-type': d.metrics.registry.contentType });
              res.end(text);
            },
            (err: unknown) => {
              d.logger.error({ err }, 'collecting metrics failed');
              json(res, 500, { code: 'internal', message: 'collecting metrics failed' });
            },
          );
          return;
        case '/version':
          if (!isGet) break;
          json(res, 200, {
            ...d.version,
            protocol: PROTOCOL_VERSION,
            runtime: `node ${process.versions.node}`,
          });
          return;
        default:
          if (d.api?.(req, res)) return;
          json(res, 404, { code: 'not_found', message: 'no such route' });
          return;
      }
      res.setHeader('allow', 'GET, HEAD');
      json(res, 405, { code: 'method_not_allowed', message: `${path} only answers GET` });
    } catch (err) {
      d.logger.error({ err, path }, 'http handler failed');
      if (!res.headersSent) json(res, 500, { code: 'internal', message: 'internal error' });
      else res.destroy();
    }
  };
}
