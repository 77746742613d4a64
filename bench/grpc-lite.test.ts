import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PartnerServiceService,
  SendMessageRequest,
  SendMessageResponse,
} from '../protos/gen/partner/v1/partner.pb.ts';
import { LiteGrpcChannel, LiteGrpcError } from './grpc-lite.ts';

// The bench's lean client against a real grpc-js server: success, status errors, metadata, deadline.
describe('bench gRPC client (grpc-lite)', () => {
  const server = new grpc.Server();
  let target = '';
  const seen: Array<{ auth: unknown; timeout: unknown }> = [];

  beforeAll(async () => {
    server.addService(
      { sendMessage: PartnerServiceService.sendMessage },
      {
        sendMessage: (
          call: grpc.ServerUnaryCall<SendMessageRequest, SendMessageResponse>,
          cb: grpc.sendUnaryData<SendMessageResponse>,
        ) => {
          seen.push({ auth: call.metadata.get('authorization')[0], timeout: call.getDeadline() });
          if (call.request.text === 'fail')
            cb({ code: grpc.status.NOT_FOUND, details: 'SB_ERR_NOT_FOUND: no such session' });
          else
            cb(null, {
              seq: call.request.text.length,
              at: 42,
              duplicate: call.request.clientMsgId === 'dup',
            });
        },
      },
    );
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? rej(e) : res(p),
      ),
    );
    target = `127.0.0.1:${port}`;
  });
  afterAll(() => server.forceShutdown());

  const req = (text: string, clientMsgId = 'c1'): SendMessageRequest => ({
    sessionId: 's',
    visitorId: 'v',
    clientMsgId,
    text,
  });

  /** One SendMessage-shaped call that is expected to fail: the error it rejected with. */
  const failure = (ch: LiteGrpcChannel, path: string, text: string, timeoutMs = 5000): Promise<unknown> =>
    ch.unary(path, SendMessageRequest, SendMessageResponse, req(text), {}, timeoutMs).then(
      () => undefined,
      (e: unknown) => e,
    );

  it('bench - a unary call round-trips the generated codecs and sends metadata and a deadline', async () => {
    const ch = new LiteGrpcChannel(target);
    try {
      const path = PartnerServiceService.sendMessage.path;
      const r = await ch.unary(
        path,
        SendMessageRequest,
        SendMessageResponse,
        req('hello', 'dup'),
        { authorization: 'Bearer k' },
        5000,
      );
      expect(r).toEqual({ seq: 5, at: 42, duplicate: true });
      const many = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          ch.unary(path, SendMessageRequest, SendMessageResponse, req('x'.repeat(i + 1)), {}, 5000),
        ),
      );
      expect(many.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(seen[0]!.auth).toBe('Bearer k');
      const d = seen[0]!.timeout;
      const deadline = d instanceof Date ? d.getTime() : Number(d);
      expect(deadline).toBeGreaterThan(Date.now());
      expect(deadline).toBeLessThanOrEqual(Date.now() + 5000);
    } finally {
      ch.close();
    }
  });

  it('bench - a status error rejects with its code and message; an unknown method is UNIMPLEMENTED', async () => {
    const ch = new LiteGrpcChannel(target);
    try {
      const err = await failure(ch, PartnerServiceService.sendMessage.path, 'fail');
      expect(err).toBeInstanceOf(LiteGrpcError);
      expect((err as LiteGrpcError).code).toBe(grpc.status.NOT_FOUND);
      expect((err as LiteGrpcError).message).toContain('SB_ERR_NOT_FOUND');
      const missing = await failure(ch, '/switchboard.partner.v1.PartnerService/Nope', 'a');
      expect((missing as LiteGrpcError).code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      ch.close();
    }
  });

  it('bench - a closed server makes calls fail instead of hanging', async () => {
    const ch = new LiteGrpcChannel('127.0.0.1:1');
    try {
      const err = await failure(ch, PartnerServiceService.sendMessage.path, 'a', 2000);
      expect(err).toBeInstanceOf(LiteGrpcError);
    } finally {
      ch.close();
    }
  });
});
