export * from './messages.ts';
export * from './ids.ts';
export { Directory, seedDemo, hashPassword, verifyPassword, normaliseEmail } from './directory.ts';
export type { MemberRecord, TenantRecord, DemoSeed } from './directory.ts';
export { toSessionEvent } from './session.ts';
export { parseDeskConfig } from './product.ts';
export type { DeskConfig } from './product.ts';

/** URL of the product module the runtime loads on every thread. */
export const DESK_PRODUCT_MODULE = new URL('./product.ts', import.meta.url);
export { searchHistory, MAX_RANGE_DAYS } from './history.ts';
export type { HistoryEntry, HistoryQuery, HistoryPage } from './history.ts';
