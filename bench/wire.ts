/** Hot-path helpers for reading the server's JSON frames without a full parse. */

/**
 * Value of the first `"key":"…"` string in a JSON text when it has no escapes (bench ids and texts
 * never do); undefined otherwise. Lets the hot path skip a full JSON.parse per frame.
 */
export function quickString(json: string, key: string, from = 0): string | undefined {
  const k = json.indexOf(`"${key}":"`, from);
  if (k < 0) return undefined;
  const start = k + key.length + 4;
  const end = json.indexOf('"', start);
  if (end < 0) return undefined;
  const v = json.slice(start, end);
  return v.includes('\\') ? undefined : v;
}

/** Text of a bench message: `<clientMsgId>|<send time, ms since epoch>`. */
export const BENCH_TEXT = /^(p\d+v\d+m\d+)\|(\d+(?:\.\d+)?)$/;
