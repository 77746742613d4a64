/**
 * A minimal unary gRPC client over one `node:http2` session, for load generation.
 *
 * `@grpc/grpc-js`'s client spends about 150 µs of CPU per unary call (call objects, interceptors,
 * filters, status bookkeeping); a one-core load generator built on it tops out near 5,000 calls/s
 * against a server that does nothing but echo (bench/RESULTS.md), so it would measure itself rather
 * than the server. This client speaks the same wire protocol (HTTP/2, length-prefixed protobuf,
 * `grpc-status` in the trailers) with the generated ts-proto codecs and little else. It is not a
 * general client: no compression, no retries, no name resolution, unary calls only.
 */
import http2 from 'node:http2';
import net from 'node:net';

function splitTarget(target: string): [string, number] {
  const i = target.lastIndexOf(':');
  return [target.slice(0, i).replace(/^\[|\]$/g, ''), Number(target.slice(i + 1))];
}

/** The encode/decode pair ts-proto generates for every message. */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** A failed call: `code` is the gRPC status code (2 = UNKNOWN when the transport failed). */
export class LiteGrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export class LiteGrpcChannel {
  private readonly session: http2.ClientHttp2Session;

  constructor(target: string) {
    const [host, port] = splitTarget(target);
    this.session = http2.connect(`http://${target}`, {
      createConnection: () => net.connect({ host, port, noDelay: true }),
    });
    this.session.on('error', () => undefined);
  }

  unary<Req, Res>(
    path: string,
    reqCodec: Codec<Req>,
    resCodec: Codec<Res>,
    req: Req,
    metadata: Record<string, string>,
    timeoutMs: number,
  ): Promise<Res> {
    const payload = reqCodec.encode(req).finish();
    const frame = Buffer.allocUnsafe(5 + payload.length);
    frame[0] = 0;
    frame.writeUInt32BE(payload.length, 1);
    frame.set(payload, 5);
    return new Promise<Res>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.session.request(
          {
            ':method': 'POST',
            ':path': path,
            'content-type': 'application/grpc',
            te: 'trailers',
            'grpc-timeout': `${Math.max(1, Math.round(timeoutMs))}m`,
            ...metadata,
          },
          { endStream: false },
        );
      } catch (err) {
        reject(new LiteGrpcError(14, (err as Error).message));
        return;
      }
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = '';
      const take = (h: http2.IncomingHttpHeaders): void => {
        const s = h['grpc-status'];
        if (typeof s === 'string') {
          status = s;
          const m = h['grpc-message'];
          message = typeof m === 'string' ? decodeURIComponent(m) : '';
        }
      };
      stream.on('response', take);
      stream.on('trailers', take);
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('error', (err: Error) => reject(new LiteGrpcError(2, err.message)));
      stream.on('end', () => {
        if (status !== '0') {
          reject(new LiteGrpcError(Number(status ?? 2), message || `grpc-status ${status ?? 'missing'}`));
          return;
        }
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0) {
          reject(new LiteGrpcError(13, 'malformed or compressed response frame'));
          return;
        }
        const len = body.readUInt32BE(1);
        if (body.length < 5 + len) {
          reject(new LiteGrpcError(13, 'truncated response frame'));
          return;
        }
        try {
          resolve(resCodec.decode(body.subarray(5, 5 + len)));
        } catch (err) {
          reject(new LiteGrpcError(13, (err as Error).message));
        }
      });
      stream.end(frame);
    });
  }

  close(): void {
    this.session.close();
  }
}
