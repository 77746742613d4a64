import { describe, expect, it } from 'vitest';
import { SbError } from '../../protos/errors.ts';
import { cdata, parseXml } from './xml.ts';

function bad(src: string): string {
  try {
    parseXml(src);
  } catch (e) {
    expect(e).toBeInstanceOf(SbError);
    expect((e as SbError).code).toBe('SB_ERR_BAD_FRAME');
    return (e as SbError).message;
  }
  throw new Error(`accepted: ${src}`);
}

describe('parseXml', () => {
  it('reads elements, CDATA, entities, comments, self-closing tags', () => {
    const doc = parseXml(
      '\ufeff<?xml version="1.0"?><!-- hi --><xml>\n <A><![CDATA[x < y]]></A><B>1 &amp; 2 &#x1F600;</B><C/>' +
        '<D><E>e</E></D><F >f</F ></xml>\n<!-- bye -->',
    );
    expect(doc.name).toBe('xml');
    expect(doc.children.map((c) => [c.name, c.text])).toEqual([
      ['A', 'x < y'],
      ['B', '1 & 2 😀'],
      ['C', ''],
      ['D', ''],
      ['F', 'f'],
    ]);
    expect(doc.children[3]!.children).toEqual([{ name: 'E', text: 'e', children: [] }]);
  });

  it('joins text and CDATA pieces', () => {
    expect(parseXml('<a>x<![CDATA[<y>]]>z</a>').text).toBe('x<y>z');
  });

  it('refuses DTDs in any case and position', () => {
    expect(bad('<!DOCTYPE a><a/>')).toMatch(/DTD/);
    expect(bad('<a><!doctype a></a>')).toMatch(/DTD/);
    bad('<?xml version="1.0"?><!ENTITY x "y"><a/>');
  });

  it('refuses what the subset leaves out', () => {
    bad('');
    bad('   ');
    bad('<a>');
    bad('<a></b>');
    bad('<a><b></a></b>');
    bad('<a x="1"></a>');
    bad('<a>&unknown;</a>');
    bad('<a>&amp</a>');
    bad('<a>&#0;</a>');
    bad('<a>\u0001</a>');
    bad('<a>]]></a>');
    bad('<a><![CDATA[x</a>');
    bad('<a><!-- x</a>');
    bad('<a><?pi x?></a>');
    bad('<a/><b/>');
    bad('text<a/>');
    bad('<a>t<b/></a>');
    bad('<1a/>');
    bad(`<${'n'.repeat(65)}/>`);
  });

  it('limits depth and element count', () => {
    bad('<a>'.repeat(10) + '</a>'.repeat(10));
    bad('<a>' + '<b/>'.repeat(600) + '</a>');
    expect(parseXml('<a>' + '<b/>'.repeat(100) + '</a>').children).toHaveLength(100);
  });
});

describe('cdata', () => {
  it('splits the terminator and drops forbidden characters', () => {
    expect(cdata('a]]>b\u0000c')).toBe('<![CDATA[a]]]]><![CDATA[>bc]]>');
    expect(parseXml(`<x>${cdata('a]]>b <&> 😀')}</x>`).text).toBe('a]]>b <&> 😀');
  });
});
