import { describe, expect, it } from 'vitest';
import {
  lastLine,
  normalizeSignature,
  SIGNATURE_LENGTH,
} from '../../../tasker/observe/failureSignature.js';

describe('failure signatures', () => {
  it.each([
    ['cannot open /tmp/x/123.csv', 'cannot open <path>'],
    ['cannot open data/run-7/b.csv: no such file', 'cannot open <path>: no such file'],
    [
      "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/x/123.csv'",
      "FileNotFoundError: [Errno <n>] No such file or directory: '<path>'",
    ],
    ['File "/app/sim.py", line 42, in <module>', 'File "<path>", line <n>, in <module>'],
    [
      'error at 2026-12-01T10:00:00.123Z: task 5f2c1a90d3e4b7aa failed',
      'error at <time>: task <hex> failed',
    ],
    [
      'request 123e4567-e89b-12d3-a456-426614174000 failed after 3.5s',
      'request <uuid> failed after <n>s',
    ],
    ['GET https://s3.local:9000/bucket/key?x=1 -> 503', 'GET <url> -> <n>'],
    ['segfault at 0x7ffd5e8c ip 00007f3a2b1c', 'segfault at <hex> ip <hex>'],
    ['connect 10.0.0.1:5672 refused, x=5, code -3', 'connect <n>:<n> refused, x=<n>, code -<n>'],
    // Words with digits in them, and quoted names, stay: they name the cause.
    ['python3 sha256 v1.2.3 run_12', 'python3 sha256 v1.2.3 run_<n>'],
    [
      "ModuleNotFoundError: No module named 'numpy'",
      "ModuleNotFoundError: No module named 'numpy'",
    ],
  ])('masks %j as %j', (line, signature) => {
    expect(normalizeSignature(line)).toBe(signature);
  });

  it('takes the last line that says something, without colours, and bounds it', () => {
    expect(lastLine('first\n\x1b[31mred   error\x1b[0m\r\n\n  \n')).toBe('red error');
    expect(lastLine('')).toBe('');
    const long = lastLine(`${'x'.repeat(500)}\n`);
    expect(long).toHaveLength(SIGNATURE_LENGTH);
    expect(long.endsWith('…')).toBe(true);
  });
});
