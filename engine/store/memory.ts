/** In-memory StateStore and ReminderStore: for tests and as the reference behaviour. */
import type { Reminder, ReminderStore, StateStore } from './types.ts';

export class MemoryStateStore implements StateStore {
  private readonly data = new Map<string, string>();
  private k(tenant: string, kind: string, key: string): string {
    return `${tenant}\u0000${kind}\u0000${key}`;
  }
  async get<T = unknown>(tenant: string, kind: string, key: string): Promise<T | undefined> {
    const v = this.data.get(this.k(tenant, kind, key));
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }
  async put(tenant: string, kind: string, key: string, value: unknown): Promise<void> {
    this.data.set(this.k(tenant, kind, key), JSON.stringify(value));
  }
  async delete(tenant: string, kind: string, key: string): Promise<void> {
    this.data.delete(this.k(tenant, kind, key));
  }
  async list(
    tenant: string,
    kind: string,
    opts: { prefix?: string; limit?: number } = {},
  ): Promise<Array<{ key: string; value: unknown }>> {
    const head = `${tenant}\u0000${kind}\u0000${opts.prefix ?? ''}`;
    const out: Array<{ key: string; value: unknown }> = [];
    for (const k of [...this.data.keys()].sort()) {
      if (!k.startsWith(head)) continue;
      out.push({
        key: k.slice(`${tenant}\u0000${kind}\u0000`.length),
        value: JSON.parse(this.data.get(k)!) as unknown,
      });
      if (out.length >= (opts.limit ?? 1000)) break;
    }
    return out;
  }
  async close(): Promise<void> {}
}

export class MemoryReminderStore implements ReminderStore {
  private readonly data = new Map<string, Reminder>();
  private k(tenant: string, kind: string, key: string, name: string): string {
    return `${tenant}\u0000${kind}\u0000${key}\u0000${name}`;
  }
  async upsert(r: Reminder): Promise<void> {
    this.data.set(this.k(r.tenant, r.kind, r.key, r.name), structuredClone(r));
  }
  async remove(tenant: string, kind: string, key: string, name: string): Promise<void> {
    this.data.delete(this.k(tenant, kind, key, name));
  }
  async due(before: number, limit: number): Promise<Reminder[]> {
    return [...this.data.values()]
      .filter((r) => r.dueAt <= before)
      .sort((a, b) => a.dueAt - b.dueAt)
      .slice(0, limit)
      .map((r) => structuredClone(r));
  }
  async close(): Promise<void> {}
}
