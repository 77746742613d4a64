import { describe, expect, it } from 'vitest';
import { fileSize, idTime, isImage } from './api.ts';

describe('console api helpers', () => {
  it('api - session ids carry their creation time; sizes and image types read well', () => {
    // The time part of an id: ms since the epoch in Crockford base 32, 10 characters.
    let t = 1795574403800;
    let head = '';
    for (let i = 0; i < 10; i++) {
      head = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'[t % 32] + head;
      t = Math.floor(t / 32);
    }
    expect(idTime(`${head}3TAWQ77C6A99NDG7`)).toBe(1795574403800);
    expect(idTime('not-an-id')).toBeUndefined();
    expect(fileSize(980)).toBe('980 B');
    expect(fileSize(12_800)).toBe('12.5 KB');
    expect(fileSize(3_250_000)).toBe('3.1 MB');
    expect(isImage('image/png')).toBe(true);
    expect(isImage('image/svg+xml')).toBe(false);
  });
});
