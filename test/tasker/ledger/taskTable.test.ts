import { describe, expect, it } from 'vitest';
import { taskId as hashId } from '../../../shared/taskId.js';
import { RunMemory } from '../../../tasker/ledger/runMemory.js';
import { TaskState, TaskTable } from '../../../tasker/ledger/taskTable.js';

const taskId = (n: number) => hashId('r', 'p', `command ${n}`);

describe('the task table', () => {
  it('keeps a state, attempt numbers and a place per task, by name', () => {
    const table = new TaskTable();
    expect(table.find(taskId(1))).toBe(-1);
    const slot = table.add(taskId(1));
    expect([table.state(slot), table.attempt(slot), table.first(slot)]).toEqual([
      TaskState.NEW,
      0,
      0,
    ]);
    table.take(slot, 3, 1234, 56);
    expect(table.find(taskId(1))).toBe(slot);
    expect([table.state(slot), table.attempt(slot), table.first(slot)]).toEqual([
      TaskState.IN_FLIGHT,
      3,
      3,
    ]);
    expect([table.offset(slot), table.length(slot)]).toEqual([1234, 56]);
    // A retry moves the attempt; the first of the session stays.
    table.set(slot, TaskState.IN_FLIGHT, 4);
    table.set(slot, TaskState.SUCCEEDED, 4);
    expect([table.state(slot), table.attempt(slot), table.first(slot)]).toEqual([
      TaskState.SUCCEEDED,
      4,
      3,
    ]);
  });

  it('counts the tasks in each state', () => {
    const table = new TaskTable();
    for (let i = 0; i < 5; i++) table.set(table.add(taskId(i)), TaskState.PENDING, 1);
    table.take(table.find(taskId(0)), 1, 0, 10);
    table.set(table.find(taskId(1)), TaskState.TRIED, 1);
    expect(table.count(TaskState.PENDING)).toBe(3);
    expect(table.count(TaskState.IN_FLIGHT)).toBe(1);
    expect(table.count(TaskState.TRIED)).toBe(1);
  });

  it('keeps every field of every row as it grows past its first size', () => {
    const table = new TaskTable();
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const slot = table.add(taskId(i));
      table.take(slot, (i % 7) + 1, i * 100, i % 1000);
      if (i % 3 === 0) table.set(slot, TaskState.SUCCEEDED, (i % 7) + 2);
    }
    for (let i = 0; i < n; i += 7) {
      const slot = table.find(taskId(i));
      expect(table.state(slot)).toBe(i % 3 === 0 ? TaskState.SUCCEEDED : TaskState.IN_FLIGHT);
      expect(table.attempt(slot)).toBe((i % 7) + (i % 3 === 0 ? 2 : 1));
      expect(table.first(slot)).toBe((i % 7) + 1);
      expect([table.offset(slot), table.length(slot)]).toEqual([i * 100, i % 1000]);
    }
    expect(table.count(TaskState.SUCCEEDED)).toBe(Math.ceil(n / 3));
  });
});

describe("the run's memory, on the task table", () => {
  it('replays queued, start and end records in any order the ledger can hold them', () => {
    const memory = new RunMemory();
    const [a, b, c, d] = [taskId(1), taskId(2), taskId(3), taskId(4)];
    // A result recorded before the broker's confirm of the same attempt: still out.
    memory.ended(a, 1, false);
    memory.queued(a, 1);
    expect([memory.pending(a), memory.attempts(a), memory.anyPending]).toEqual([1, 1, true]);
    // An older attempt's outcome leaves a newer one out.
    memory.queued(b, 2);
    memory.ended(b, 1, false);
    expect([memory.pending(b), memory.attempts(b)]).toEqual([2, 2]);
    memory.ended(b, 2, false);
    expect([memory.pending(b), memory.attempts(b)]).toEqual([0, 2]);
    // Success wins over anything later about older attempts.
    memory.ended(c, 2, true);
    memory.ended(c, 1, false);
    memory.queued(c, 1);
    expect([memory.succeeded(c), memory.pending(c), memory.attempts(c)]).toEqual([true, 0, 2]);
    // A start without a confirm (local mode has none) is a try, not an attempt out.
    memory.started(d, 1);
    expect([memory.pending(d), memory.attempts(d), memory.succeeded(d)]).toEqual([0, 1, false]);
    memory.ended(a, 1, true);
    expect(memory.anyPending).toBe(false);
  });

  it('leaves the rows a phase of this session has in flight to that phase', () => {
    const memory = new RunMemory();
    const id = taskId(1);
    memory.queued(id, 1);
    const slot = memory.tasks.find(id);
    memory.tasks.take(slot, 1, 0, 10);
    expect(memory.anyPending).toBe(false); // taken: no longer an earlier session's
    memory.ended(id, 1, true);
    memory.queued(id, 2);
    expect(memory.tasks.state(slot)).toBe(TaskState.IN_FLIGHT);
    expect(memory.pending(id)).toBe(0);
    memory.tasks.set(slot, TaskState.SUCCEEDED, 1);
    expect([memory.succeeded(id), memory.attempts(id)]).toEqual([true, 1]);
  });

  it('keeps the size class of a task apart from its state, and a move up uses no retry', () => {
    const table = new TaskTable();
    const slot = table.add(taskId(1));
    table.take(slot, 1, 0, 10);
    expect(table.sizeClass(slot)).toBe(0);
    table.moveUp(slot, 1);
    // The next attempt is awaited on class 1; the first attempt of the session moved with it.
    expect([
      table.state(slot),
      table.attempt(slot),
      table.first(slot),
      table.sizeClass(slot),
    ]).toEqual([TaskState.IN_FLIGHT, 2, 2, 1]);
    table.vanish(slot);
    expect([table.attempt(slot), table.vanished(slot), table.sizeClass(slot)]).toEqual([3, 1, 1]);
    table.set(slot, TaskState.SUCCEEDED, 3);
    expect([table.state(slot), table.sizeClass(slot), table.first(slot)]).toEqual([
      TaskState.SUCCEEDED,
      1,
      3,
    ]);
    expect(table.slotsIn(TaskState.SUCCEEDED)).toEqual([slot]);
    expect(table.count(TaskState.IN_FLIGHT)).toBe(0);
    table.setSizeClass(slot, 15);
    expect([table.state(slot), table.sizeClass(slot)]).toEqual([TaskState.SUCCEEDED, 15]);
  });

  it('remembers from the ledger the class a task last ran on', () => {
    const memory = new RunMemory();
    const id = taskId(1);
    memory.queued(id, 1, 0);
    memory.ended(id, 1, false, 0);
    memory.queued(id, 2, 1);
    memory.ended(id, 2, false, 1);
    memory.ended(id, 1, false, 0); // a late duplicate of the older attempt changes nothing
    const slot = memory.tasks.find(id);
    expect([
      memory.tasks.state(slot),
      memory.tasks.attempt(slot),
      memory.tasks.sizeClass(slot),
    ]).toEqual([TaskState.TRIED, 2, 1]);
  });
});
