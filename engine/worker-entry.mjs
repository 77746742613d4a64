// Worker thread bootstrap. The runtime is TypeScript run through tsx, and on Node 20 a worker does
// not inherit the parent's module loader (neither from `--import tsx` nor from execArgv), so the
// worker registers it itself before loading anything written in TypeScript.
const { register } = await import('tsx/esm/api');
register();
await import('./worker.ts');
