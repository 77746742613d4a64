import { describe, expect, it } from 'vitest';
import { clone, tagsToText, textToTags } from './types.ts';

describe('admin tag tree text', () => {
  it('admin - indented text and the tag tree convert both ways; bare names get ids', () => {
    const tree = [
      { tagId: 'billing', name: '账单', children: [{ tagId: 'refund', name: '退款' }] },
      { tagId: 'tech', name: 'Technical' },
    ];
    expect(textToTags(tagsToText(tree))).toEqual(tree);
    const parsed = textToTags('sales: 售前\n  新功能\n    价格\nsupport: 售后\n\n');
    expect(parsed).toHaveLength(2);
    expect(parsed[0]!.children![0]!.name).toBe('新功能');
    expect(parsed[0]!.children![0]!.children![0]!.name).toBe('价格');
    expect(parsed[0]!.children![0]!.tagId).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(new Set([parsed[0]!.children![0]!.tagId, parsed[0]!.children![0]!.children![0]!.tagId]).size).toBe(
      2,
    );
  });

  it('admin - clone copies deeply', () => {
    const a = { x: [{ y: 1 }] };
    const b = clone(a);
    b.x[0]!.y = 2;
    expect(a.x[0]!.y).toBe(1);
  });
});
