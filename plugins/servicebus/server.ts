/**
 * serviceBus's local server (spec edge-modules §6.2, devices-dmi-router §5.8): an edge app calls a
 * cloud URL through it. The cloud router's servicebus-source rules allow target URLs (`start`, kept
 * in the table `target_urls`; `stop` removes one); the server listens on `server:port` while one is
 * allowed. A request `{"method", "targetURL", "payload"}` naming an allowed URL goes to the cloud as
 * an upload; the app gets `{"code", "msg", "body"}` with HTTP 200, as KubeEdge answers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type Database from 'better-sqlite3';
import {
  KernelError,
  errorText,
  isKernelError,
  newMessage,
  Operation,
  type Logger,
  type Message,
} from '../../kernel/index.js';
import { ServiceBusModuleName, UserGroup } from '../../protocol/index.js';

/** A local request's body at most: the cloud router's limit (KubeEdge reads 5 MB). */
const MAX_REQUEST_BYTES = 12 * 2 ** 20;

/** The table KubeEdge's serviceBus keeps its allowed target URLs in (metamanager/dao/dbclient). */
export interface TargetUrls {
  has(url: string): boolean;
  count(): number;
  add(url: string): void;
  remove(url: string): void;
}

export function targetUrls(db: Database.Database): TargetUrls {
  db.exec('CREATE TABLE IF NOT EXISTS `target_urls` (`url` text, PRIMARY KEY (`url`))');
  const has = db.prepare('SELECT 1 FROM `target_urls` WHERE `url` = ?').pluck();
  const count = db.prepare('SELECT COUNT(*) FROM `target_urls`').pluck();
  const add = db.prepare('INSERT OR REPLACE INTO `target_urls` (`url`) VALUES (?)');
  const remove = db.prepare('DELETE FROM `target_urls` WHERE `url` = ?');
  return {
    has: (u) => has.get(u) !== undefined,
    count: () => count.get() as number,
    add: (u) => void add.run(u),
    remove: (u) => void remove.run(u),
  };
}

/** What the app gets (KubeEdge's servicebus `Response`). */
export interface LocalAnswer {
  code: number;
  msg: string;
  body?: string;
}

export interface LocalServerOptions {
  address: string;
  port: number;
  /** modules.serviceBus.timeout, in ms: how long the cloud's answer is waited for */
  timeoutMs: number;
  urls: TargetUrls;
  /** The upload to the cloud as a sync request to edgeHub; resolves with the cloud's answer. */
  request(msg: Message, timeoutMs: number): Promise<Message>;
  log: Logger;
}

/** The local server, listening while at least one target URL is allowed. */
export class LocalServer {
  private server: Server | undefined;
  /** the listen in progress or done: start/stop messages are handled side by side */
  private listening: Promise<void> | undefined;

  constructor(private readonly o: LocalServerOptions) {}

  /** `start`: allow the URL, listen if not yet. */
  async allow(url: string): Promise<void> {
    this.o.urls.add(url);
    await this.listen();
  }

  /** `stop`: forget the URL; close when none is left. */
  async forbid(url: string): Promise<void> {
    this.o.urls.remove(url);
    if (this.o.urls.count() === 0) await this.close();
  }

  /** Listen when the table has URLs (module start). */
  async resume(): Promise<void> {
    if (this.o.urls.count() > 0) await this.listen();
  }

  listen(): Promise<void> {
    this.listening ??= new Promise<void>((resolve, reject) => {
      const server = createServer((req, res) => void this.serve(req, res));
      server.once('error', (err) => {
        this.listening = undefined;
        reject(
          new KernelError(
            'ESERVICEBUS_LISTEN',
            `modules.serviceBus: cannot listen on ${this.o.address}:${this.o.port}: ${errorText(err)}`,
          ),
        );
      });
      server.listen(this.o.port, this.o.address, () => {
        server.on('error', (err) =>
          this.o.log.error({ err: errorText(err) }, 'servicebus: local server error'),
        );
        this.server = server;
        this.o.log.info(
          { address: `${this.o.address}:${this.o.port}` },
          'servicebus: local server listening',
        );
        resolve();
      });
    });
    return this.listening;
  }

  async close(): Promise<void> {
    const server = this.server;
    await this.listening?.catch(() => undefined);
    this.server = undefined;
    this.listening = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.o.log.info({}, 'servicebus: local server closed (no target URL allowed)');
  }

  get port(): number | undefined {
    const a = this.server?.address();
    return typeof a === 'object' && a !== null ? a.port : undefined;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let answer: LocalAnswer;
    try {
      answer = await this.call(await readRequest(req));
    } catch (err) {
      answer = { code: 400, msg: errorText(err) };
    }
    const body = JSON.stringify(answer);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** One call: the request checked, sent to the cloud, its answer or failure. */
  private async call(raw: Buffer): Promise<LocalAnswer> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      return {
        code: 400,
        msg: `expected a JSON request {"method", "targetURL", "payload"}: ${errorText(err)}`,
      };
    }
    const url = (parsed as { targetURL?: unknown } | null)?.targetURL;
    if (typeof url !== 'string' || url === '')
      return { code: 400, msg: 'targetURL: expected the URL a rule of the cloud allows' };
    if (!this.o.urls.has(url))
      return {
        code: 400,
        msg: `url ${url} is not allowed and please make a rule for this url in the cloud`,
      };
    const msg = newMessage(
      { source: ServiceBusModuleName, group: UserGroup, operation: Operation.upload, resource: url },
      raw.toString('base64'),
    );
    let reply: Message;
    try {
      reply = await this.o.request(msg, this.o.timeoutMs);
    } catch (err) {
      if (isKernelError(err, 'EBUS_TIMEOUT'))
        return {
          code: 504,
          msg: `no answer from the cloud within ${this.o.timeoutMs / 1000} s (modules.serviceBus.timeout)`,
        };
      return { code: 502, msg: errorText(err) };
    }
    const text = typeof reply.content === 'string' ? reply.content : JSON.stringify(reply.content ?? null);
    if (reply.route.operation === Operation.error) return { code: 502, msg: text };
    return { code: 200, msg: 'receive response from cloud successfully', body: text };
  }
}

function readRequest(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(c);
    });
    req.on('end', () =>
      size > MAX_REQUEST_BYTES
        ? reject(new Error(`request body larger than ${MAX_REQUEST_BYTES} bytes`))
        : resolve(Buffer.concat(chunks, size)),
    );
    req.on('error', reject);
  });
}
