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
}

export type LogSink = (line: string) => void;

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
    return new JsonLogger(this.lvl, prefix, this.sink, all);
  }

  isLevelEnabled(level: LogLevel): boolean {
    return LEVEL_NUMBER[level] >= this.threshold;
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
    const head = `{"level":${level},"time":${Date.now()}${this.prefix ? `,${this.prefix}` : ''}`;
    this.sink(`${head}${fields}${text !== undefined ? `,"msg":${JSON.stringify(text)}` : ''}}\n`);
  }
}

/** The process's root logger. `sink` defaults to stderr (stdout stays free for --minconfig). */
export function createLogger(
  level: LogLevel = 'info',
  base: Record<string, unknown> = {},
  sink = toStderr,
): Logger {
  return new JsonLogger(level, '', sink, {}).child({ pid: process.pid, ...base });
}
