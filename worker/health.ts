import { createServer, type Server } from 'node:http';
import { InfraError } from '../shared/errors.js';

/** What the probes ask; a server without `ready` answers no probes, one without `metrics` no scrapes. */
export interface HealthState {
  /** Connected to the broker and taking tasks, or waiting for the task queue to exist. */
  ready?(): boolean;
  /** Prometheus metrics, for `GET /metrics`. */
  metrics?: { text(): Promise<string>; readonly contentType: string } | undefined;
}

/**
 * Liveness and readiness for Kubernetes probes: `GET /livez` answers 200 while the event loop
 * turns; `GET /readyz` answers 200 when the worker is connected and taking tasks (or waiting
 * for a tasker to declare the task queue), 503 while it is not (connecting, reconnecting,
 * stopping); `GET /metrics` the Prometheus metrics, when given. Nothing else is served.
 */
export function startHealthServer(
  port: number,
  state: HealthState,
  host = '0.0.0.0',
): Promise<Server> {
  const server = createServer((request, response) => {
    const path = request.url?.split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics' && state.metrics) {
      const metrics = state.metrics;
      metrics.text().then(
        (text) => response.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    } else if (path === '/livez' && state.ready) {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz' && state.ready) {
      const ready = state.ready();
      response
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new InfraError(
          'PORT_UNAVAILABLE',
          `cannot serve ${state.ready ? '/livez and /readyz' : '/metrics'} on port ${port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve(server));
  });
}
