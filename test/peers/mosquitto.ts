/**
 * A real Eclipse Mosquitto broker for eventBus/deviceTwin/mapper tests: own config in its own temp
 * dir, listening on 127.0.0.1 only, anonymous access, no persistence.
 */
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, requirePeer, sleep, spawnPeer, stopOnce, tempDir, waitFor, type Peer } from './util.js';

/** Options of {@link startMosquitto}. */
export interface MosquittoOptions {
  /** Port to listen on (default: a free port). */
  port?: number;
  /** Extra lines appended to the generated `mosquitto.conf`. */
  extraConfig?: string[];
  /** Log every client action to the peer output (mosquitto `-v`); default false. */
  verbose?: boolean;
  /** Keep sessions and queued messages across {@link MosquittoPeer.restart} (saved in its dir). */
  persistence?: boolean;
}

/** A running broker from {@link startMosquitto}. */
export interface MosquittoPeer {
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** `tcp://127.0.0.1:PORT` (KubeEdge style; the `mqtt` npm client also accepts `mqtt://`). */
  readonly url: string;
  /** `mqtt://127.0.0.1:PORT`, for clients that only know the `mqtt:` scheme. */
  readonly mqttUrl: string;
  /** The broker's temp dir (holds `mosquitto.conf`). */
  readonly dir: string;
  /** Pid of the current broker process (changes on {@link MosquittoPeer.restart}). */
  pid(): number;
  /** The broker's recent log output. */
  output(): string;
  /**
   * Waits until the log of the running broker has a line matching `line` (subscriptions are logged
   * as `<time>: <client id> <qos> <filter>`, unsubscriptions as `<time>: <client id> <filter>`).
   */
  waitLog(line: RegExp, timeoutMs?: number): Promise<void>;
  /** Stops the broker (SIGTERM by pid) and removes its temp dir. */
  stop(): Promise<void>;
  /** Stops the broker and starts it again on the same port (simulates broker loss). */
  restart(opts?: { downMs?: number }): Promise<void>;
  /** Stops the broker but keeps its dir and port, for a later {@link MosquittoPeer.start}. */
  kill(): Promise<void>;
  /** Starts the broker again after {@link MosquittoPeer.kill}. */
  start(): Promise<void>;
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export function tcpAccepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts a mosquitto broker on a free loopback port and waits until it accepts connections. */
export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoPeer> {
  const bin = requirePeer('mosquitto');
  const dir = await tempDir('kubeedge-mosquitto');
  const port = opts.port ?? (await freePort());
  const configPath = join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    ...(opts.persistence ? ['persistence true', `persistence_location ${dir}/`] : ['persistence false']),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'log_type subscribe',
    'log_type unsubscribe',
    ...(opts.extraConfig ?? []),
  ];
  await writeFile(configPath, lines.join('\n') + '\n');

  let peer: Peer | undefined;

  const launch = async (): Promise<void> => {
    const args = ['-c', configPath, ...(opts.verbose ? ['-v'] : [])];
    const p = await spawnPeer(bin, args, { cwd: dir, name: `mosquitto:${port}`, graceMs: 3_000 });
    peer = p;
    await waitFor(
      async () => {
        if (!p.running()) throw new Error(`mosquitto exited early`);
        return tcpAccepts(port);
      },
      {
        what: `mosquitto on 127.0.0.1:${port}`,
        timeoutMs: 10_000,
        intervalMs: 50,
        details: () => p.output(),
      },
    );
  };
  const kill = async (): Promise<void> => {
    await peer?.stop();
  };
  const stop = stopOnce(dir, kill);

  try {
    await launch();
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    port,
    url: `tcp://127.0.0.1:${port}`,
    mqttUrl: `mqtt://127.0.0.1:${port}`,
    dir,
    pid: () => peer?.pid ?? -1,
    output: () => peer?.output() ?? '',
    waitLog: (line, timeoutMs = 10_000) =>
      waitFor(() => line.test(peer?.output() ?? ''), {
        what: `mosquitto log line ${String(line)}`,
        timeoutMs,
        intervalMs: 20,
        details: () => peer?.output() ?? '',
      }),
    stop,
    kill,
    start: launch,
    restart: async ({ downMs = 0 } = {}) => {
      await kill();
      if (downMs > 0) await sleep(downMs);
      await launch();
    },
  };
}
