import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerError, Status, createServer, type Server, type ServiceImplementation } from 'nice-grpc';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeServiceDefinition, type Container } from '../../proto/gen/cri/v1/api.js';
import { CriClient, CriError, MAX_MSG_SIZE } from './cri.js';

/** `n` containers whose labels make a message of about `bytes`. */
function containers(bytes: number): Container[] {
  const label = 'x'.repeat(64 * 1024);
  return Array.from({ length: Math.ceil(bytes / label.length) }, (_, i) => ({
    id: `c${i}`,
    state: 1,
    labels: { big: label },
  }));
}

describe('CRI client (in-process runtime stand-in)', () => {
  let server: Server | undefined;
  let cri: CriClient | undefined;
  let dir = '';
  afterEach(async () => {
    cri?.close();
    server?.forceShutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = async (listContainersBytes: number): Promise<CriClient> => {
    dir = mkdtempSync(join(tmpdir(), 'edged-cri-'));
    server = createServer();
    const unimplemented = Object.fromEntries(
      Object.keys(RuntimeServiceDefinition.methods).map((m) => [
        m,
        async () => {
          throw new ServerError(Status.UNIMPLEMENTED, m);
        },
      ]),
    ) as unknown as ServiceImplementation<typeof RuntimeServiceDefinition>;
    server.add(RuntimeServiceDefinition, {
      ...unimplemented,
      // never answers: the client's deadline must end the call
      version: (_req, ctx) =>
        new Promise((_resolve, reject) =>
          ctx.signal.addEventListener('abort', () =>
            reject(Object.assign(new Error('aborted'), { name: 'AbortError' })),
          ),
        ),
      listContainers: async () => ({ containers: containers(listContainersBytes) }),
    });
    await server.listen(`unix://${join(dir, 'cri.sock')}`);
    cri = new CriClient({ runtimeEndpoint: `unix:${join(dir, 'cri.sock')}`, timeoutMs: 10_000 });
    return cri;
  };

  it('ends a call at its deadline with a coded DEADLINE_EXCEEDED naming the method', async () => {
    const c = await start(0);
    const err = await c.version(150).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriError);
    expect(err).toMatchObject({ method: 'version', code: 4 }); // 4 = DEADLINE_EXCEEDED
    expect(String((err as Error).message)).toMatch(/CRI version failed \(DEADLINE_EXCEEDED\)/);
  });

  it('takes answers up to 16 MiB (kubelet), beyond the 4 MiB gRPC default, and refuses larger ones', async () => {
    const c = await start(6 * 1024 * 1024);
    expect((await c.listContainers()).length).toBe(96);
    cri?.close();
    server?.forceShutdown();
    const big = await start(MAX_MSG_SIZE + 1024 * 1024);
    const err = await big.listContainers().catch((e: unknown) => e);
    expect(err).toMatchObject({ method: 'listContainers', code: 8 }); // 8 = RESOURCE_EXHAUSTED
  });
});
