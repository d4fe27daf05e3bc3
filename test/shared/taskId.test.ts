import { describe, expect, it } from 'vitest';
import { OccurrenceCounter, taskId } from '../../shared/taskId.js';

describe('task ids', () => {
  it('are stable content hashes of run, phase and command', () => {
    const id = taskId('run-1', 'simulate', 'python sim.py 1');
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(taskId('run-1', 'simulate', 'python sim.py 1')).toBe(id);
    expect(taskId('run-2', 'simulate', 'python sim.py 1')).not.toBe(id);
    expect(taskId('run-1', 'metrics', 'python sim.py 1')).not.toBe(id);
    expect(taskId('run-1', 'simulate', 'python sim.py 1', 1)).not.toBe(id);
  });

  it('number repeated lines so that each copy is its own task', () => {
    const counter = new OccurrenceCounter();
    const ids = ['a', 'b', 'a', 'a', 'b'].map((command) => {
      const first = taskId('r', 'p', command);
      const occurrence = counter.next(first);
      return [occurrence, taskId('r', 'p', command, occurrence)] as const;
    });
    expect(ids.map(([occurrence]) => occurrence)).toEqual([0, 0, 1, 2, 1]);
    expect(new Set(ids.map(([, id]) => id)).size).toBe(5);
  });

  it('count correctly past many distinct lines (the table grows)', () => {
    const counter = new OccurrenceCounter();
    const n = 50_000;
    for (let i = 0; i < n; i++) expect(counter.next(taskId('r', 'p', `cmd ${i}`))).toBe(0);
    for (let i = 0; i < n; i += 997) expect(counter.next(taskId('r', 'p', `cmd ${i}`))).toBe(1);
  });
});
