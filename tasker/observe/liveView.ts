import { createServer, type Server } from 'node:http';
import { InfraError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { buildReport } from './report.js';
import { runStatus } from './status.js';

/**
 * `tasker run --http PORT`: a read-only view of the run while it goes on, for a browser (or
 * `kubectl port-forward`): `/` is the report of `tasker report`, reloading every 5 seconds;
 * `/api/status` is the status JSON of `tasker status --json`.
 */
export async function startLiveView(options: {
  readonly port: number;
  readonly host: string;
  readonly stateDir: string;
  readonly run: string;
  readonly log: Logger;
}): Promise<Server> {
  const server = createServer((request, response) => {
    const send = (code: number, type: string, body: string) => {
      response.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(405, 'text/plain', 'read-only: GET only\n');
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/favicon.ico') {
      send(204, 'image/x-icon', '');
      return;
    }
    const page =
      path === '/'
        ? buildReport(options.stateDir, options.run, { refreshSeconds: 5 }).then((html) =>
            send(200, 'text/html; charset=utf-8', html),
          )
        : path === '/api/status'
          ? runStatus(options.stateDir, options.run).then((status) =>
              send(200, 'application/json', `${JSON.stringify(status, null, 2)}\n`),
            )
          : Promise.resolve(send(404, 'text/plain', 'not found: try / or /api/status\n'));
    page.catch((error: unknown) =>
      send(503, 'text/plain', `not available yet: ${(error as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new InfraError(
          'HTTP_PORT',
          `cannot serve the live view on ${options.host}:${options.port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`,
        ),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  server.unref();
  options.log.info(
    `live view of run ${options.run} on http://${options.host}:${options.port}/ (status JSON at /api/status)`,
  );
  return server;
}
