export {
  DEFAULT_MAX_AGE_MS,
  DEFAULT_MAX_BODY_BYTES,
  inboundDedupeKey,
  type AdapterOptions,
  type ChannelAdapter,
  type ChannelKind,
  type ChannelRequest,
  type ChannelResponse,
  type InboundKind,
  type InboundMessage,
} from './types.ts';
export { sha1Signature, signQuery, verifySignedQuery } from './signature.ts';
export { WechatAdapter, WECHAT_REPLY_MAX_BYTES, type WechatOptions } from './wechat.ts';
export { WeiboAdapter, type WeiboOptions } from './weibo.ts';
export { handleChannelRequest, channelErrorResponse, type InboundHandler } from './handler.ts';
export {
  ChannelSendError,
  FakeProvider,
  type ChannelProvider,
  type ProviderCall,
  type SendFailure,
} from './provider.ts';
export { parseXml, cdata, XML_LIMITS, type XmlElement } from './xml.ts';
