import { describe, expect, it } from 'vitest';
import { formatDuration, isDuration, normalizeDuration, parseDuration } from './index.js';

describe('parseDuration', () => {
  it.each([
    ['1m0s', 60_000],
    ['20s', 20_000],
    ['100ms', 100],
    ['4h0m0s', 14_400_000],
    ['1.5h', 5_400_000],
    ['0', 0],
    ['0s', 0],
    ['-2s', -2000],
    ['1h30m', 5_400_000],
    ['1us', 0.001],
    ['1µs', 0.001],
    ['250ns', 0.00025],
    ['.5s', 500],
  ])('%s -> %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', 'abc', '10', '1x', '1m0', '.s', 's', '1 s', '--1s'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
    expect(isDuration(text)).toBe(false);
  });
});

describe('Go canonical form', () => {
  it.each([
    ['60s', '1m0s'],
    ['1m', '1m0s'],
    ['4h', '4h0m0s'],
    ['90s', '1m30s'],
    ['1.5s', '1.5s'],
    ['100ms', '100ms'],
    ['0', '0s'],
    ['1500ms', '1.5s'],
    ['2us', '2µs'],
    ['1h0m0.5s', '1h0m0.5s'],
  ])('%s -> %s', (text, canonical) => {
    expect(normalizeDuration(text)).toBe(canonical);
  });

  it('formats milliseconds', () => {
    expect(formatDuration(120_000)).toBe('2m0s');
    expect(formatDuration(5)).toBe('5ms');
    expect(formatDuration(0)).toBe('0s');
  });
});
