import { describe, expect, it } from 'vitest';
import {
  ACK_MARGIN,
  consumeArguments,
  queueTimeout,
  takesConsumerTimeout,
} from '../../shared/consumerTimeout.js';
import { HOUR } from '../../shared/duration.js';

describe('the acknowledgement timeout Warren asks for', () => {
  it('is asked of RabbitMQ 3.11.15 and later only, as the longest task plus the margin', () => {
    for (const version of ['3.10.8', '3.11.14', '', 'unknown'])
      expect(takesConsumerTimeout(version), version).toBe(false);
    for (const version of ['3.11.15', '3.12.0', '4.0.5', '4.3.0'])
      expect(takesConsumerTimeout(version), version).toBe(true);
    expect(queueTimeout('4.0.5', 24 * HOUR)).toBe(24 * HOUR + ACK_MARGIN);
    expect(queueTimeout('3.10.8', 24 * HOUR)).toBeUndefined();
    expect(queueTimeout('4.0.5', 0)).toBeUndefined();
    expect(consumeArguments('4.0.5', HOUR)).toEqual({ 'x-consumer-timeout': HOUR + ACK_MARGIN });
    expect(consumeArguments('3.10.8', HOUR)).toBeUndefined();
  });
});
