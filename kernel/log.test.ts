import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from './log.js';

interface Line {
  level: number;
  module?: string;
  msg: string;
  repeated?: number;
  intervalMs?: number;
  id?: number;
}

function capture(level: 'debug' | 'info' = 'info'): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  const log = createLogger(level, {}, (l) => void lines.push(JSON.parse(l) as Line), 1000);
  return { log, lines };
}

describe('logger: repeated events are folded into periodic counts', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('writes the first line, then one line per interval with the count', () => {
    const { log, lines } = capture();
    const hub = log.child({ module: 'devicetwin' });
    for (let i = 0; i < 500; i++) hub.error({ id: i }, 'cloud messages unconfirmed');
    expect(lines).toEqual([expect.objectContaining({ level: 50, module: 'devicetwin', id: 0 })]);

    vi.advanceTimersByTime(1000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      level: 50,
      module: 'devicetwin',
      msg: 'cloud messages unconfirmed',
      repeated: 499,
      intervalMs: 1000,
    });

    // Still flooding: one count line per interval, no line per event.
    for (let i = 0; i < 300; i++) hub.error('cloud messages unconfirmed');
    vi.advanceTimersByTime(1000);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ repeated: 300 });
  });

  it('forgets an event quiet for a whole interval: its next occurrence is written at once', () => {
    const { log, lines } = capture();
    log.warn('broker unreachable');
    vi.advanceTimersByTime(1000); // no repeat: nothing to count, the event is forgotten
    expect(lines).toHaveLength(1);
    log.warn('broker unreachable');
    expect(lines).toHaveLength(2);
    expect(lines[1]).not.toHaveProperty('repeated');
  });

  it('keys by module, level and message: different ones are all written', () => {
    const { log, lines } = capture();
    log.child({ module: 'a' }).error('boom');
    log.child({ module: 'b' }).error('boom');
    log.child({ module: 'a' }).warn('boom');
    log.child({ module: 'a' }).error('other');
    expect(lines.map((l) => `${l.module}/${l.level}/${l.msg}`)).toEqual([
      'a/50/boom',
      'b/50/boom',
      'a/40/boom',
      'a/50/other',
    ]);
  });

  it('never folds debug lines, and flush() writes pending counts at once', () => {
    const { log, lines } = capture('debug');
    for (let i = 0; i < 3; i++) log.debug('trace of a message');
    expect(lines).toHaveLength(3);
    log.error('disk full');
    log.error('disk full');
    log.flush();
    expect(lines.at(-1)).toMatchObject({ msg: 'disk full', repeated: 1 });
  });

  it('keeps the JSON-lines shape pino tools read', () => {
    const raw: string[] = [];
    const log = createLogger('info', { component: 'edgecore' }, (l) => void raw.push(l), 1000);
    log.info({ port: 1 }, 'listening');
    log.info({ port: 1 }, 'listening');
    vi.advanceTimersByTime(1000);
    for (const l of raw) {
      expect(l.endsWith('}\n')).toBe(true);
      expect(JSON.parse(l)).toMatchObject({ level: 30, pid: process.pid, component: 'edgecore' });
    }
  });
});
