import { describe, expect, it } from 'vitest';
import { formatLogLine, logOptions } from './server.js';

const fmt = (line: string, q: string, now = Date.parse('2026-01-01T00:00:10Z')): string => {
  const out: Buffer[] = [];
  formatLogLine(Buffer.from(line), logOptions(new URLSearchParams(q), now), out);
  return Buffer.concat(out).toString();
};

describe("edged's kubelet-API server: CRI log lines as kubectl logs shows them", () => {
  it('keeps the content, a newline for a full line, none for a partial one', () => {
    expect(fmt('2026-01-01T00:00:01.5Z stdout F hello world', '')).toBe('hello world\n');
    expect(fmt('2026-01-01T00:00:01.5Z stderr P part', '')).toBe('part');
  });

  it('puts the timestamp first with timestamps=true', () => {
    expect(fmt('2026-01-01T00:00:01.123456789Z stdout F x', 'timestamps=true')).toBe(
      '2026-01-01T00:00:01.123456789Z x\n',
    );
  });

  it('drops lines before sinceSeconds / sinceTime and lines not in the CRI format', () => {
    expect(fmt('2026-01-01T00:00:01Z stdout F old', 'sinceSeconds=5')).toBe('');
    expect(fmt('2026-01-01T00:00:06Z stdout F new', 'sinceSeconds=5')).toBe('new\n');
    expect(fmt('2026-01-01T00:00:06Z stdout F new', 'sinceTime=2026-01-01T00:00:07Z')).toBe('');
    expect(fmt('garbage', '')).toBe('');
  });

  it('refuses a bad number with the parameter named', () => {
    expect(() => logOptions(new URLSearchParams('tailLines=-1'))).toThrow(
      /tailLines: expected a non-negative integer/,
    );
  });
});
