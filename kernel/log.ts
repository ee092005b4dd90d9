/**
 * Structured, levelled logs: one JSON object a line on stderr, in pino's shape
 * (`{"level":30,"time":…,"pid":…,"module":"metamanager","msg":"…"}`) so pino tooling reads them.
 * Written here rather than taken from pino because pino costs edgecore ~8 MB of resident memory
 * at idle, and the kernel's whole budget above Node itself is a few MB.
 */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LEVEL_NUMBER: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

export interface LogFn {
  (msg: string): void;
  (fields: Record<string, unknown>, msg?: string): void;
}

export interface Logger {
  level: LogLevel;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose every line also carries `bindings` (e.g. `{ module: 'edged' }`). */
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled(level: LogLevel): boolean;
  /** Write the counts of folded repeats now (before exit). */
  flush(): void;
}

export type LogSink = (line: string) => void;

/** The start of a line: level, time and the logger's bindings. */
function lineHead(level: number, prefix: string): string {
  return `{"level":${level},"time":${Date.now()}${prefix ? `,${prefix}` : ''}`;
}

/** How long repeats of one event are folded into a count (see Repeats). */
export const REPEAT_INTERVAL_MS = 10_000;
/** Distinct events followed at once; past that, lines are written as they come. */
const REPEAT_KEYS_MAX = 1000;

/**
 * Folds floods of one event. An info/warn/error/fatal line whose bindings (module, ...), level and
 * message were already written in the current interval is counted instead of written; at the end
 * of the interval one line per such event says how many times it repeated
 * (`{"level":50,...,"module":"eventbus","repeated":1234,"intervalMs":10000,"msg":"<the message>"}`).
 * An event quiet for a whole interval is forgotten, so its next occurrence is written again at
 * once. Shared by a root logger and its children; debug and trace lines are never folded.
 */
class Repeats {
  private readonly seen = new Map<string, { level: number; prefix: string; msg: string; count: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: LogSink,
    private readonly intervalMs: number,
  ) {}

  /** False when the line is a repeat (counted, not to be written). */
  admit(level: number, prefix: string, msg: string): boolean {
    const key = `${level}\u0000${prefix}\u0000${msg}`;
    const entry = this.seen.get(key);
    if (entry) {
      entry.count++;
      return false;
    }
    if (this.seen.size >= REPEAT_KEYS_MAX) return true;
    this.seen.set(key, { level, prefix, msg, count: 0 });
    this.timer ??= setInterval(() => this.flush(), this.intervalMs).unref();
    return true;
  }

  /** Write the counts of the interval that ends; forget the events that did not repeat. */
  flush(): void {
    for (const [key, e] of this.seen) {
      if (e.count === 0) {
        this.seen.delete(key);
        continue;
      }
      this.sink(
        `${lineHead(e.level, e.prefix)},"repeated":${e.count},"intervalMs":${this.intervalMs},"msg":${JSON.stringify(e.msg)}}\n`,
      );
      e.count = 0;
    }
    if (this.seen.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

let stderrGone = false;
/**
 * Lines go to stderr. When stderr is a pipe whose reader went away, writing fails with EPIPE as an
 * 'error' event: logging stops quietly instead (reporting it would log, fail again, and spin).
 */
const toStderr: LogSink = (line) => {
  if (stderrGone) return;
  if (process.stderr.listenerCount('error') === 0) {
    process.stderr.on('error', () => {
      stderrGone = true;
    });
  }
  process.stderr.write(line);
};

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      type: value.name,
      message: value.message,
      ...(code !== undefined ? { code } : {}),
      stack: value.stack,
    };
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

class JsonLogger implements Logger {
  private threshold: number;

  constructor(
    private lvl: LogLevel,
    private readonly prefix: string,
    private readonly sink: LogSink,
    private readonly bindings: Record<string, unknown>,
    private readonly repeats: Repeats,
  ) {
    this.threshold = LEVEL_NUMBER[lvl];
  }

  get level(): LogLevel {
    return this.lvl;
  }

  set level(level: LogLevel) {
    this.lvl = level;
    this.threshold = LEVEL_NUMBER[level];
  }

  readonly trace: LogFn = (a: string | Record<string, unknown>, msg?: string) => this.write(10, a, msg);
  readonly debug: LogFn = (a: string | Record<string, unknown>, msg?: string) => this.write(20, a, msg);
  readonly info: LogFn = (a: string | Record<string, unknown>, msg?: string) => this.write(30, a, msg);
  readonly warn: LogFn = (a: string | Record<string, unknown>, msg?: string) => this.write(40, a, msg);
  readonly error: LogFn = (a: string | Record<string, unknown>, msg?: string) => this.write(50, a, msg);
  readonly fatal: LogFn = (a: string | Record<string, unknown>, msg?: string) => this.write(60, a, msg);

  child(bindings: Record<string, unknown>): Logger {
    const all = { ...this.bindings, ...bindings };
    const prefix = JSON.stringify(all, replacer).slice(1, -1);
    return new JsonLogger(this.lvl, prefix, this.sink, all, this.repeats);
  }

  isLevelEnabled(level: LogLevel): boolean {
    return LEVEL_NUMBER[level] >= this.threshold;
  }

  flush(): void {
    this.repeats.flush();
  }

  private write(level: number, a: string | Record<string, unknown>, msg?: string): void {
    if (level < this.threshold) return;
    let fields = '';
    let text = msg;
    if (typeof a === 'string') text = a;
    else {
      const json = JSON.stringify(a, replacer);
      if (json.length > 2) fields = `,${json.slice(1, -1)}`;
    }
    if (level >= LEVEL_NUMBER.info && text !== undefined && !this.repeats.admit(level, this.prefix, text)) {
      return;
    }
    this.sink(
      `${lineHead(level, this.prefix)}${fields}${text !== undefined ? `,"msg":${JSON.stringify(text)}` : ''}}\n`,
    );
  }
}

/** The process's root logger. `sink` defaults to stderr (stdout stays free for --minconfig). */
export function createLogger(
  level: LogLevel = 'info',
  base: Record<string, unknown> = {},
  sink = toStderr,
  repeatIntervalMs = REPEAT_INTERVAL_MS,
): Logger {
  const repeats = new Repeats(sink, repeatIntervalMs);
  return new JsonLogger(level, '', sink, {}, repeats).child({ pid: process.pid, ...base });
}
