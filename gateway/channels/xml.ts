/**
 * A small, strict XML reader for the flat documents WeChat posts (`<xml><ToUserName>…</ToUserName>…</xml>`),
 * and the CDATA writer for passive replies.
 *
 * Accepted: an optional BOM and `<?xml …?>` declaration, elements without attributes, text with the five
 * predefined entities and numeric character references, CDATA sections, comments. Refused with
 * SB_ERR_BAD_FRAME: any DTD (`<!DOCTYPE`, `<!ENTITY` — so no entity expansion, no external entities),
 * other processing instructions, attributes, unknown entities, characters XML forbids, mismatched or
 * unclosed tags, text mixed with child elements, content after the root, more than
 * {@link XML_LIMITS.maxDepth} levels or {@link XML_LIMITS.maxElements} elements.
 */
import { SbError } from '../../protos/errors.ts';

export interface XmlElement {
  name: string;
  /** Text content (entities decoded, CDATA unwrapped); '' for elements that have children. */
  text: string;
  children: XmlElement[];
}

export const XML_LIMITS = { maxDepth: 6, maxElements: 512, maxNameChars: 64 } as const;

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_.-]/;

/** Characters XML 1.0 allows: tab, LF, CR, U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF. */
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

function fail(at: number, why: string): never {
  throw new SbError('SB_ERR_BAD_FRAME', `malformed XML at ${at}: ${why}`);
}

/** Decodes UTF-8 strictly (invalid sequences are SB_ERR_BAD_FRAME, not U+FFFD). */
export function decodeUtf8(body: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body);
  } catch {
    throw new SbError('SB_ERR_BAD_FRAME', 'body is not valid UTF-8');
  }
}

function decodeEntities(raw: string, at: number): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&<]{0,10});?/g, (m: string, ref: string) => {
    if (!m.endsWith(';')) fail(at, 'unterminated entity reference');
    let cp: number;
    if (/^#x[0-9a-fA-F]{1,6}$/.test(ref)) cp = parseInt(ref.slice(2), 16);
    else if (/^#[0-9]{1,7}$/.test(ref)) cp = parseInt(ref.slice(1), 10);
    else {
      const v = PREDEFINED[ref];
      if (v === undefined) fail(at, `unknown entity &${ref.slice(0, 10)};`);
      return v;
    }
    if (!isXmlChar(cp)) fail(at, 'character reference to a forbidden character');
    return String.fromCodePoint(cp);
  });
}

/** Parses one document; throws SB_ERR_BAD_FRAME on anything outside the subset described above. */
export function parseXml(src: string): XmlElement {
  for (let k = 0; k < src.length; k++) {
    const cp = src.codePointAt(k)!;
    if (!isXmlChar(cp)) fail(k, 'forbidden character');
    if (cp > 0xffff) k++;
  }
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST/i.test(src)) fail(src.search(/<!/), 'DTDs are not accepted');

  let i = src.charCodeAt(0) === 0xfeff ? 1 : 0;
  let elements = 0;
  const skipWs = (): void => {
    while (i < src.length && ' \t\r\n'.includes(src[i]!)) i++;
  };
  const skipComment = (): void => {
    const end = src.indexOf('-->', i + 4);
    if (end < 0) fail(i, 'unterminated comment');
    i = end + 3;
  };
  const skipMisc = (): void => {
    for (;;) {
      skipWs();
      if (src.startsWith('<!--', i)) skipComment();
      else return;
    }
  };

  if (src.startsWith('<?xml', i)) {
    const end = src.indexOf('?>', i);
    if (end < 0) fail(i, 'unterminated XML declaration');
    i = end + 2;
  }
  skipMisc();

  const readName = (): string => {
    const start = i;
    if (i >= src.length || !NAME_START.test(src[i]!)) fail(i, 'expected an element name');
    i++;
    while (i < src.length && NAME_CHAR.test(src[i]!)) i++;
    if (i - start > XML_LIMITS.maxNameChars) fail(start, 'element name too long');
    return src.slice(start, i);
  };

  const element = (depth: number): XmlElement => {
    if (depth > XML_LIMITS.maxDepth) fail(i, 'nested too deeply');
    if (++elements > XML_LIMITS.maxElements) fail(i, 'too many elements');
    // at '<'
    i++;
    const name = readName();
    skipWs();
    if (src.startsWith('/>', i)) {
      i += 2;
      return { name, text: '', children: [] };
    }
    if (src[i] !== '>')
      fail(i, src[i] === undefined ? `unterminated <${name}>` : 'attributes are not accepted');
    i++;
    let text = '';
    let hasText = false;
    const children: XmlElement[] = [];
    for (;;) {
      if (i >= src.length) fail(i, `unterminated <${name}>`);
      if (src.startsWith('<![CDATA[', i)) {
        const end = src.indexOf(']]>', i + 9);
        if (end < 0) fail(i, 'unterminated CDATA section');
        text += src.slice(i + 9, end);
        hasText = true;
        i = end + 3;
      } else if (src.startsWith('<!--', i)) {
        skipComment();
      } else if (src.startsWith('</', i)) {
        const at = i;
        i += 2;
        const close = readName();
        skipWs();
        if (close !== name || src[i] !== '>') fail(at, `expected </${name}>`);
        i++;
        if (children.length > 0) {
          if (hasText && text.trim() !== '') fail(at, `text mixed with elements in <${name}>`);
          text = '';
        }
        return { name, text, children };
      } else if (src[i] === '<') {
        if (src[i + 1] === '?' || src[i + 1] === '!') fail(i, 'unexpected markup');
        children.push(element(depth + 1));
      } else {
        const next = src.indexOf('<', i);
        const end = next < 0 ? src.length : next;
        const raw = src.slice(i, end);
        if (raw.includes(']]>')) fail(i, "']]>' in text");
        text += decodeEntities(raw, i);
        if (raw.trim() !== '') hasText = true;
        i = end;
      }
    }
  };

  if (src[i] !== '<') fail(i, 'expected the root element');
  const root = element(1);
  skipMisc();
  if (i !== src.length) fail(i, 'content after the root element');
  return root;
}

/** Wraps text in CDATA, splitting any `]]>` and dropping characters XML forbids. */
export function cdata(text: string): string {
  let clean = '';
  for (const ch of text) if (isXmlChar(ch.codePointAt(0)!)) clean += ch;
  return `<![CDATA[${clean.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
}
