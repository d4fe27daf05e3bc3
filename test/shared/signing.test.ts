import type { Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { checkSignature, SIGNATURE_HEADER, signature } from '../../shared/signing.js';
import { decodeTasks } from '../../shared/wire.js';

/** docs/security.md's worked example. */
const KEY = 'warren-example-key-0123456789';
const BODY =
  '{"v":1,"run":"py-1","phase":"adhoc","task":"d4d4829c3115e134","attempt":1,"command":"echo hello","timeoutMs":0}';
const PROPERTIES = {
  messageId: 'd4d4829c3115e134',
  correlationId: 'py-1',
  replyTo: 'warren.results.py-1',
};
const EXPECTED = 'v1=2c996ec4f90b1e03ab5b3789707ab545e3db450baaef19eb0e33a86ac3149b64';

function message(body: string, headers: Record<string, unknown>, properties = PROPERTIES): Message {
  return {
    content: Buffer.from(body),
    fields: {},
    properties: { type: 'warren.task', headers, ...properties },
  } as unknown as Message;
}

describe('signed tasks', () => {
  it("signs the docs' worked example to the hex the doc gives", () => {
    expect(signature(KEY, PROPERTIES, Buffer.from(BODY))).toBe(EXPECTED);
  });

  it('takes hex of either case, and says what a malformed header should be', () => {
    expect(checkSignature(KEY, message(BODY, { [SIGNATURE_HEADER]: EXPECTED }))).toBeUndefined();
    expect(
      checkSignature(
        KEY,
        message(BODY, { [SIGNATURE_HEADER]: `v1=${EXPECTED.slice(3).toUpperCase()}` }),
      ),
    ).toBeUndefined();
    expect(checkSignature(KEY, message(BODY, { [SIGNATURE_HEADER]: EXPECTED.slice(3) }))).toBe(
      'its signature header is malformed (expected `v1=` and 64 hex digits)',
    );
    // A base64-looking key is its text, not decoded: another key, another signature.
    expect(checkSignature(`${KEY}=`, message(BODY, { [SIGNATURE_HEADER]: EXPECTED }))).toMatch(
      /does not match/,
    );
    // The body as sent is signed: the same JSON spaced otherwise does not match.
    expect(
      checkSignature(
        KEY,
        message(JSON.stringify(JSON.parse(BODY), null, 1), { [SIGNATURE_HEADER]: EXPECTED }),
      ),
    ).toMatch(/does not match/);
  });
});

describe('reading a task', () => {
  it('refuses a run id that starts with a dot, stating the real rule', () => {
    const body = BODY.replaceAll('py-1', '.py-1');
    const decoded = decodeTasks(
      message(body, {}, { ...PROPERTIES, correlationId: '.py-1', replyTo: 'warren.results..py-1' }),
    );
    expect(decoded).toEqual({
      ok: false,
      reason:
        'task does not have the expected shape: run: a run id is 1 to 64 letters, digits, ., _ or -, starting with a letter or digit',
    });
  });
});
