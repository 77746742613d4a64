/** Public surface of the actor runtime. */
export * from './types.ts';
export type * from './store/types.ts';
export { createRuntime } from './runtime.ts';
export { FakeClock, realClock, settle } from './clock.ts';
export { shardOf, tenantOfKey } from './hash.ts';
export { MemoryStateStore, MemoryReminderStore } from './store/memory.ts';
export { underlyingStore } from './store/fenced.ts';
