/**
 * A map from task ids (16 hex digits, 64 bits) to a few unsigned 32-bit numbers, kept in typed
 * arrays: 8 bytes of key plus 4 per column per slot, at most 4/3 slots per entry. A run of a
 * million tasks tracks them in tens of megabytes, where a Map of strings to objects takes
 * hundreds.
 *
 * Slots move when the table grows: look a task up again after adding another.
 */
export class IdMap {
  private keys: Uint32Array;
  private values: Uint32Array;
  private used: Uint8Array;
  private count = 0;

  constructor(
    /** Numbers kept per id. */
    readonly columns: number,
    capacity = 1024,
  ) {
    let size = 16;
    while (size < capacity) size *= 2;
    this.keys = new Uint32Array(size * 2);
    this.values = new Uint32Array(size * columns);
    this.used = new Uint8Array(size);
  }

  /** The slot of `id`, or -1 when it is not in the map. */
  find(id: string): number {
    const hi = Number.parseInt(id.slice(0, 8), 16) >>> 0;
    const lo = Number.parseInt(id.slice(8, 16), 16) >>> 0;
    const slot = this.probe(hi, lo);
    return this.used[slot] ? slot : -1;
  }

  /** The slot of `id`, added with every column 0 when it is not in the map. */
  upsert(id: string): number {
    return this.upsertKey(
      Number.parseInt(id.slice(0, 8), 16) >>> 0,
      Number.parseInt(id.slice(8, 16), 16) >>> 0,
    );
  }

  /** `upsert` by the id's two 32-bit halves (as `keyAt` gives them): no strings. */
  upsertKey(hi: number, lo: number): number {
    if ((this.count + 1) * 4 > this.used.length * 3) this.grow();
    const slot = this.probe(hi >>> 0, lo >>> 0);
    if (!this.used[slot]) {
      this.used[slot] = 1;
      this.keys[slot * 2] = hi;
      this.keys[slot * 2 + 1] = lo;
      this.count++;
    }
    return slot;
  }

  /** Ids held. */
  get size(): number {
    return this.count;
  }

  /** The id held in `slot` as its two 32-bit halves, high first. */
  keyAt(slot: number): readonly [number, number] {
    return [this.keys[slot * 2] ?? 0, this.keys[slot * 2 + 1] ?? 0];
  }

  get(slot: number, column: number): number {
    return this.values[slot * this.columns + column] ?? 0;
  }

  set(slot: number, column: number, value: number): void {
    this.values[slot * this.columns + column] = value;
  }

  /** The id held in `slot` (16 lowercase hex digits). */
  idAt(slot: number): string {
    const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
    return hex(this.keys[slot * 2] ?? 0) + hex(this.keys[slot * 2 + 1] ?? 0);
  }

  /** The slots in use whose column `column` holds `value`, in table order. */
  slotsWhere(column: number, mask: number, value: number): number[] {
    const found: number[] = [];
    const { used, values, columns } = this;
    for (let slot = 0; slot < used.length; slot++) {
      if (used[slot] && ((values[slot * columns + column] ?? 0) & mask) === value) found.push(slot);
    }
    return found;
  }

  /** Reads column `column` of `id`, 0 when absent. */
  value(id: string, column: number): number {
    const slot = this.find(id);
    return slot < 0 ? 0 : this.get(slot, column);
  }

  private probe(hi: number, lo: number): number {
    const mask = this.used.length - 1;
    let slot = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask;
    while (this.used[slot] && (this.keys[slot * 2] !== hi || this.keys[slot * 2 + 1] !== lo)) {
      slot = (slot + 1) & mask;
    }
    return slot;
  }

  private grow(): void {
    const { keys, values, used, columns } = this;
    const size = used.length * 2;
    this.keys = new Uint32Array(size * 2);
    this.values = new Uint32Array(size * columns);
    this.used = new Uint8Array(size);
    for (let old = 0; old < used.length; old++) {
      if (!used[old]) continue;
      const hi = keys[old * 2] ?? 0;
      const lo = keys[old * 2 + 1] ?? 0;
      const slot = this.probe(hi, lo);
      this.used[slot] = 1;
      this.keys[slot * 2] = hi;
      this.keys[slot * 2 + 1] = lo;
      this.values.set(values.subarray(old * columns, old * columns + columns), slot * columns);
    }
  }
}
