import { createServer, type Server } from 'node:http';

/** What the probes ask. */
export interface HealthState {
  /** Connected to the broker and taking tasks, or waiting for the task queue to exist. */
  ready(): boolean;
}

/**
 * Liveness and readiness for Kubernetes probes: `GET /livez` answers 200 while the event loop
 * turns; `GET /readyz` answers 200 when the worker is connected and taking tasks (or waiting
 * for a tasker to declare the task queue), 503 while it is not (connecting, reconnecting,
 * stopping). Nothing else is served.
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
    } else if (path === '/livez') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = state.ready();
      response
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
