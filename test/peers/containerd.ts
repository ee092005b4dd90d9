/**
 * A private, offline containerd (Debian's 1.6 + runc) for edged tests, following
 * shared/spec/cri.md §3: its own root, state, socket, runc root and config.toml in a temp dir,
 * `restrict_oom_score_adj = true`, a locally imported sandbox ("pause") image, and a CNI conflist
 * of its own (bridge + portmap, loopback is called by containerd itself) on a private /24 with a
 * bridge device of its own. Nothing is ever pulled: images are built from Debian's busybox-static
 * without a Docker engine and imported with `ctr images import`.
 *
 * Tear-down ({@link ContainerdPeer.stop}) removes every pod sandbox through CRI first, so that CNI
 * releases veths, IPs and hostPort rules, kills what is left of tasks, stops containerd by its pid,
 * and only then deletes the bridge, mounts and directories.
 */
import { createChannel, createClientFactory, type Channel, type Client } from 'nice-grpc';
import { RuntimeServiceDefinition } from '../../proto/gen/cri/v1/api.js';
import { deadlineMiddleware, type DeadlineOptions } from '../../proto/rpc.js';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  errorMessage,
  onCleanup,
  progress,
  removeTempDir,
  requirePeer,
  run,
  spawnPeer,
  tempDir,
  waitFor,
  type Peer,
  type RunResult,
} from './util.js';

/** Tag of the application test image (busybox; default command `sh`). */
export const BUSYBOX_IMAGE = 'docker.io/library/busybox-local:1';
/** Tag of the sandbox stand-in image (busybox `sleep 2147483647`), named by `sandbox_image`. */
export const PAUSE_IMAGE = 'registry.local/pause:edge';
/** The containerd namespace the CRI plugin uses; images must be imported here to be seen by CRI. */
export const CRI_NAMESPACE = 'k8s.io';
/** Where Debian's containernetworking-plugins installs the CNI plugins. */
export const CNI_BIN_DIR = '/usr/lib/cni';

/** Bump when the image layout below changes, to invalidate cached tars. */
const IMAGE_BUILDER_VERSION = 1;
/** `PATH` for containerd and its children: runc and iptables live in `/usr/sbin` on Debian. */
const DAEMON_PATH = [
  process.env.PATH ?? '',
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
]
  .filter((p) => p !== '')
  .join(':');

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

/** Options of {@link buildBusyboxImage} / {@link busyboxImageTar}. */
export interface BusyboxImageOptions {
  /** Image `Entrypoint` (default none). */
  entrypoint?: string[] | null;
  /** Image `Cmd` (default `['sh']`). */
  cmd?: string[] | null;
  /** Extra `Env` entries after `PATH=...`. */
  env?: string[];
  /** Image `WorkingDir` (default `/`). */
  workingDir?: string;
  /** containerd namespace to import into (default `k8s.io`, the one CRI sees). */
  namespace?: string;
  /** Snapshotter to unpack for at import (default: ctr's default, overlayfs). */
  snapshotter?: string;
}

/** An image imported by {@link buildBusyboxImage}. */
export interface BuiltImage {
  /** The tag it was imported as. */
  ref: string;
  /** The docker-archive tar in the cache dir. */
  tarPath: string;
  /** `sha256:<config digest>`, what CRI reports as the image id / imageRef. */
  imageId: string;
}

/** The directory under `os.tmpdir()` where built image tars are cached (content-addressed). */
export function imageCacheDir(): string {
  return join(tmpdir(), 'kubeedge-peers-cache', 'images');
}

function ociArch(): string {
  switch (arch()) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    default:
      return arch(); // arm64, arm, ppc64, s390x, riscv64 share the Go/OCI names
  }
}

/** True when the ELF file has no PT_INTERP program header, i.e. is statically linked. */
function isStaticElf(buf: Buffer): boolean {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = buf[4] === 2;
  const le = buf[5] === 1;
  const u16 = (o: number): number => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const phoff = is64 ? Number(le ? buf.readBigUInt64LE(32) : buf.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    if (u32(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** Finds Debian's static busybox (package busybox-static) and returns its path and content. */
async function staticBusybox(): Promise<{ path: string; content: Buffer }> {
  const path = requirePeer('busybox', 'busybox-static');
  const content = await readFile(path);
  if (!isStaticElf(content)) {
    throw new Error(`${path} is not statically linked: install busybox-static (run .ci/install-peers.sh)`);
  }
  return { path, content };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Builds (or finds in the cache) a docker-archive image tar (what `docker save` writes) whose only
 * layer holds Debian's static busybox with a symlink for every applet in `/bin`, `/etc/passwd`,
 * `/etc/group` and the usual empty dirs, tagged `ref`. Needs no container engine: GNU tar builds
 * the layer. Returns the tar's path and the image id.
 */
export async function busyboxImageTar(
  ref: string,
  opts: BusyboxImageOptions = {},
): Promise<{ tarPath: string; imageId: string }> {
  const tar = requirePeer('tar');
  const busybox = await staticBusybox();
  const entrypoint = opts.entrypoint ?? null;
  const cmd = opts.cmd === undefined ? ['sh'] : opts.cmd;
  const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(opts.env ?? [])];
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        v: IMAGE_BUILDER_VERSION,
        busybox: createHash('sha256').update(busybox.content).digest('hex'),
        ref,
        entrypoint,
        cmd,
        env,
        workingDir: opts.workingDir ?? '/',
        arch: ociArch(),
      }),
    )
    .digest('hex')
    .slice(0, 24);
  const cache = imageCacheDir();
  const tarPath = join(cache, `busybox-${key}.tar`);
  const idPath = `${tarPath}.id`;
  if (existsSync(tarPath) && existsSync(idPath)) {
    return { tarPath, imageId: (await readFile(idPath, 'utf8')).trim() };
  }

  progress(`building image ${ref} from ${busybox.path} (no Docker engine) into ${cache}`);
  await mkdir(cache, { recursive: true });
  const work = await mkdtemp(join(cache, 'build-'));
  try {
    // 1. rootfs
    const rootfs = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'var', 'home']) {
      await mkdir(join(rootfs, d), { recursive: true });
      await chmod(join(rootfs, d), 0o755);
    }
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await chmod(join(rootfs, 'root'), 0o700);
    await copyFile(busybox.path, join(rootfs, 'bin', 'busybox'));
    await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
    const applets = (await run(busybox.path, ['--list'])).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => /^[A-Za-z0-9_.[-]+$/.test(s) && s !== 'busybox');
    for (const applet of ['sh', 'sleep', 'echo', 'cat', 'ls', ...applets]) {
      const link = join(rootfs, 'bin', applet);
      if (!existsSync(link)) await symlink('busybox', link);
    }
    await writeFile(
      join(rootfs, 'etc', 'passwd'),
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n',
    );
    await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    await chmod(join(rootfs, 'etc', 'passwd'), 0o644);
    await chmod(join(rootfs, 'etc', 'group'), 0o644);

    // 2. layer tar (reproducible: sorted names, fixed mtime and owners)
    const layerTmp = join(work, 'layer.tar');
    await run(tar, [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-C',
      rootfs,
      '-cf',
      layerTmp,
      '.',
    ]);
    const layerSha = await sha256File(layerTmp);

    // 3. image config, 4. manifest.json, 5. the archive
    const config = {
      architecture: ociArch(),
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: { Env: env, Entrypoint: entrypoint, Cmd: cmd, WorkingDir: opts.workingDir ?? '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerSha}`] },
      history: [
        { created: '1970-01-01T00:00:00Z', created_by: 'test/peers/containerd.ts busybox-static layer' },
      ],
    };
    const configBytes = Buffer.from(JSON.stringify(config));
    const configSha = createHash('sha256').update(configBytes).digest('hex');
    const archive = join(work, 'archive');
    await mkdir(join(archive, layerSha), { recursive: true });
    await rename(layerTmp, join(archive, layerSha, 'layer.tar'));
    await writeFile(join(archive, `${configSha}.json`), configBytes);
    const manifest = [{ Config: `${configSha}.json`, RepoTags: [ref], Layers: [`${layerSha}/layer.tar`] }];
    await writeFile(join(archive, 'manifest.json'), JSON.stringify(manifest));
    const outTmp = join(work, 'image.tar');
    await run(tar, [
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-C',
      archive,
      '-cf',
      outTmp,
      'manifest.json',
      `${configSha}.json`,
      `${layerSha}/layer.tar`,
    ]);
    const imageId = `sha256:${configSha}`;
    await writeFile(`${idPath}.${process.pid}`, imageId);
    await rename(outTmp, tarPath); // atomic: concurrent builders write the same content
    await rename(`${idPath}.${process.pid}`, idPath);
    return { tarPath, imageId };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Builds (cached) a busybox image tagged `ref` and imports it into the containerd at `ctrSocket`
 * (namespace `k8s.io` unless `opts.namespace`) with `ctr images import`. Use `ref` =
 * {@link BUSYBOX_IMAGE} for an application image and, with `entrypoint: ['/bin/sleep']`,
 * `cmd: ['2147483647']`, {@link PAUSE_IMAGE} for the sandbox stand-in.
 */
export async function buildBusyboxImage(
  ctrSocket: string,
  ref: string,
  opts: BusyboxImageOptions = {},
): Promise<BuiltImage> {
  const { tarPath, imageId } = await busyboxImageTar(ref, opts);
  const ctr = requirePeer('ctr', 'containerd');
  progress(`importing ${ref} into containerd ${ctrSocket}`);
  const args = ['-a', ctrSocket, '-n', opts.namespace ?? CRI_NAMESPACE, 'images', 'import'];
  if (opts.snapshotter) args.push('--snapshotter', opts.snapshotter);
  args.push(tarPath);
  await run(ctr, args, { timeoutMs: 120_000 });
  return { ref, tarPath, imageId };
}

/** Builds and imports the sandbox stand-in image ({@link PAUSE_IMAGE} unless `ref` is given). */
export function buildPauseImage(
  ctrSocket: string,
  ref: string = PAUSE_IMAGE,
  opts: BusyboxImageOptions = {},
): Promise<BuiltImage> {
  return buildBusyboxImage(ctrSocket, ref, { entrypoint: ['/bin/sleep'], cmd: ['2147483647'], ...opts });
}

// ---------------------------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------------------------

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /** `sandbox_image` of the CRI plugin (default {@link PAUSE_IMAGE}). */
  sandboxImage?: string;
  /** Build and import the sandbox image right after start (default true). */
  importSandboxImage?: boolean;
  /** Write the CNI conflist (default true). Without it `NetworkReady` is false and only host-network pods work. */
  cni?: boolean;
  /** Pod subnet (default: a free `10.88.N.0/24`). */
  subnet?: string;
  /** Snapshotter (default `overlayfs`; `native` also works). */
  snapshotter?: 'overlayfs' | 'native';
  /** containerd `--log-level` (default `warn`). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Max time to wait for the socket to answer (default 30 s). */
  startTimeoutMs?: number;
}

/** A running containerd from {@link startContainerd}. */
export interface ContainerdPeer {
  /** containerd's pid. */
  readonly pid: number;
  /** Absolute path of the gRPC socket (CRI and containerd API). */
  readonly socket: string;
  /** `unix://` + socket: the CRI endpoint for edged. */
  readonly endpoint: string;
  /** containerd `root` (content, snapshots, metadata). */
  readonly root: string;
  /** containerd `state` (task bundles, fifos). */
  readonly state: string;
  /** runc root for CRI containers (`<state>/runc`; runc adds the namespace). */
  readonly runcRoot: string;
  /** CNI conf dir watched by this containerd (holds `10-kubeedge-test.conflist` unless `cni: false`). */
  readonly cniConfDir: string;
  /** A directory the test may use as pod `log_directory` parent. */
  readonly podLogDir: string;
  /** The temp dir holding everything above. */
  readonly dir: string;
  /** Pod subnet and bridge device of the conflist. */
  readonly subnet: string;
  readonly bridge: string;
  /** `sandbox_image` of the config. */
  readonly sandboxImage: string;
  /**
   * Runs `ctr -a SOCKET -n <namespace, default k8s.io> ...args` and returns its output (throws on
   * failure). For `ctr run`, pass `--runc-root` {@link ContainerdPeer.runcRoot} so that tear-down
   * can find the container even if containerd died.
   */
  ctr(
    args: readonly string[],
    opts?: { namespace?: string; timeoutMs?: number; allowFailure?: boolean },
  ): Promise<RunResult>;
  /** RuntimeReady / NetworkReady from CRI `Status`. */
  status(): Promise<Record<string, { status: boolean; reason: string; message: string }>>;
  /** containerd's recent log output. */
  output(): string;
  /** Tears everything down (see the module doc) and removes the temp dir. */
  stop(): Promise<void>;
}

/** A CRI client of the runtime.v1 definitions (proto/gen), with per-call deadlines. */
interface TeardownClient {
  channel: Channel;
  cri: Client<typeof RuntimeServiceDefinition, DeadlineOptions>;
  close(): void;
}

function criClient(socket: string): TeardownClient {
  const channel = createChannel(`unix://${socket}`);
  const cri = createClientFactory().use(deadlineMiddleware).create(RuntimeServiceDefinition, channel);
  return { channel, cri, close: () => channel.close() };
}

async function pickSubnet(): Promise<string> {
  const used = new Set<string>();
  const ip = (() => {
    try {
      return requirePeer('ip', 'iproute2');
    } catch {
      return undefined;
    }
  })();
  if (ip) {
    const routes = await run(ip, ['-4', '-o', 'route'], { allowFailure: true });
    const addrs = await run(ip, ['-4', '-o', 'addr'], { allowFailure: true });
    for (const m of `${routes.stdout}\n${addrs.stdout}`.matchAll(/\b10\.88\.(\d+)\./g)) used.add(m[1] ?? '');
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const n = 1 + ((randomBytes(1)[0] ?? 0) % 250);
    if (!used.has(String(n))) return `10.88.${n}.0/24`;
  }
  throw new Error('no free 10.88.N.0/24 subnet for the test CNI network');
}

/** Mount points below `dir` (deepest first), from /proc/self/mountinfo. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const unescape = (s: string): string =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return info
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((mp) => mp.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Pids of containerd shims that belong to the containerd listening on `socket`. */
async function shimPids(socket: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (!(args[0] ?? '').includes('containerd-shim')) continue;
    const i = args.indexOf('-address');
    if (i >= 0 && args[i + 1] === socket) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Starts a private containerd (config from cri.md §3.3, CNI from §3.4) in a temp dir, waits until
 * `ctr version` answers and CRI reports RuntimeReady (and NetworkReady with CNI), then imports the
 * sandbox image. Must run as root.
 */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<ContainerdPeer> {
  const containerdBin = requirePeer('containerd');
  const ctrBin = requirePeer('ctr', 'containerd');
  requirePeer('runc');
  requirePeer('containerd-shim-runc-v2', 'containerd');
  const withCni = opts.cni ?? true;
  if (withCni) {
    for (const plugin of ['bridge', 'host-local', 'portmap', 'loopback']) {
      requirePeer(join(CNI_BIN_DIR, plugin), 'containernetworking-plugins');
    }
    requirePeer('iptables');
  }
  if (process.getuid?.() !== 0) throw new Error('startContainerd: containerd tests must run as root');

  const dir = await tempDir('kubeedge-containerd');
  const socket = join(dir, 'containerd.sock');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const runcRoot = join(state, 'runc');
  const cniConfDir = join(dir, 'cni', 'net.d');
  const cniDataDir = join(dir, 'cni', 'networks');
  const podLogDir = join(dir, 'pods');
  const optDir = join(dir, 'opt');
  const sandboxImage = opts.sandboxImage ?? PAUSE_IMAGE;
  const snapshotter = opts.snapshotter ?? 'overlayfs';
  const subnet = opts.subnet ?? (await pickSubnet());
  const bridge = `kecni${randomBytes(3).toString('hex')}`; // <= 15 chars (IFNAMSIZ)
  for (const d of [root, state, cniConfDir, cniDataDir, podLogDir, optDir])
    await mkdir(d, { recursive: true });

  const toml = `version = 2
root = ${JSON.stringify(root)}
state = ${JSON.stringify(state)}

[grpc]
  address = ${JSON.stringify(socket)}

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = ${JSON.stringify(sandboxImage)}
    # the sandbox's oom_score_adj -998 needs CAP_SYS_RESOURCE, which test sandboxes may lack (cri.md 3.6)
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = ${JSON.stringify(snapshotter)}
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = ${JSON.stringify(runcRoot)}
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = ${JSON.stringify(CNI_BIN_DIR)}
      conf_dir = ${JSON.stringify(cniConfDir)}
      max_conf_num = 1
  [plugins."io.containerd.internal.v1.opt"]
    path = ${JSON.stringify(optDir)}
`;
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, toml);
  if (withCni) {
    const conflist = {
      cniVersion: '1.0.0',
      name: 'kubeedge-test-pods',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: cniDataDir,
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    };
    await writeFile(join(cniConfDir, '10-kubeedge-test.conflist'), JSON.stringify(conflist, null, 2));
  }

  const ctr = (
    args: readonly string[],
    o: { namespace?: string; timeoutMs?: number; allowFailure?: boolean } = {},
  ) =>
    run(ctrBin, ['-a', socket, '-n', o.namespace ?? CRI_NAMESPACE, ...args], {
      timeoutMs: o.timeoutMs ?? 60_000,
      allowFailure: o.allowFailure ?? false,
    });

  let daemon: Peer | undefined;
  let client: TeardownClient | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    unregister();
    const problems: string[] = [];
    if (daemon?.running()) {
      // 1. CRI: stop + remove every sandbox (CNI DEL releases veth, IP, hostPort rules).
      try {
        const c = (client ??= criClient(socket));
        const { items } = await c.cri.listPodSandbox({}, { deadlineMs: 10_000 });
        for (const { id } of items) {
          await c.cri.stopPodSandbox({ podSandboxId: id }, { deadlineMs: 30_000 }).catch((e: unknown) => {
            problems.push(`StopPodSandbox ${id}: ${errorMessage(e)}`);
          });
          await c.cri.removePodSandbox({ podSandboxId: id }, { deadlineMs: 30_000 }).catch((e: unknown) => {
            problems.push(`RemovePodSandbox ${id}: ${errorMessage(e)}`);
          });
        }
      } catch (err) {
        problems.push(`CRI tear-down: ${errorMessage(err)}`);
      }
      // 2. Whatever tasks are left (e.g. from `ctr run`), in every namespace.
      const namespaces = await run(ctrBin, ['-a', socket, 'namespaces', 'ls', '-q'], {
        allowFailure: true,
        timeoutMs: 10_000,
      });
      for (const ns of namespaces.stdout.split('\n').filter((s) => s.trim() !== '')) {
        const tasks = await ctr(['tasks', 'ls', '-q'], {
          namespace: ns,
          allowFailure: true,
          timeoutMs: 10_000,
        });
        for (const id of tasks.stdout.split('\n').filter((s) => s.trim() !== '')) {
          await ctr(['tasks', 'kill', '-a', '-s', 'SIGKILL', id], {
            namespace: ns,
            allowFailure: true,
            timeoutMs: 10_000,
          });
          await ctr(['tasks', 'delete', '-f', id], { namespace: ns, allowFailure: true, timeoutMs: 15_000 });
        }
      }
    }
    client?.close();
    // 3. containerd itself, by pid.
    await daemon?.stop();
    // 4. Leftovers: containers in our runc root, shims of our socket, mounts, the bridge.
    const runcBin = (() => {
      try {
        return requirePeer('runc');
      } catch {
        return undefined;
      }
    })();
    if (runcBin && existsSync(runcRoot)) {
      for (const ns of await readdir(runcRoot).catch(() => [] as string[])) {
        const nsRoot = join(runcRoot, ns);
        const list = await run(runcBin, ['--root', nsRoot, 'list', '-q'], {
          allowFailure: true,
          timeoutMs: 10_000,
        });
        for (const id of list.stdout.split('\n').filter((s) => s.trim() !== '')) {
          problems.push(`container ${ns}/${id} survived; force-deleting it`);
          await run(runcBin, ['--root', nsRoot, 'delete', '--force', id], {
            allowFailure: true,
            timeoutMs: 10_000,
          });
        }
      }
    }
    for (const pid of await shimPids(socket)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const umount = (() => {
      try {
        return requirePeer('umount', 'mount');
      } catch {
        return undefined;
      }
    })();
    if (umount) {
      for (const mp of await mountsUnder(dir)) {
        await run(umount, ['-l', mp], { allowFailure: true, timeoutMs: 10_000 });
      }
    }
    if (withCni) {
      try {
        const ip = requirePeer('ip', 'iproute2');
        await run(ip, ['link', 'del', bridge], { allowFailure: true, timeoutMs: 10_000 });
      } catch {
        // no iproute2: leave the bridge
      }
    }
    await removeTempDir(dir);
    if (problems.length > 0) progress(`containerd tear-down notes: ${problems.join('; ')}`);
  };
  const unregister = onCleanup(stop);

  try {
    progress(`starting containerd (${socket})`);
    const d = await spawnPeer(
      containerdBin,
      ['--config', configPath, '--log-level', opts.logLevel ?? 'warn'],
      {
        cwd: dir,
        name: 'containerd',
        env: { ...process.env, PATH: DAEMON_PATH },
        graceMs: 10_000,
      },
    );
    daemon = d;
    const details = (): string => d.output();
    await waitFor(
      async () => {
        if (!d.running()) throw new Error('containerd exited early');
        if (!existsSync(socket)) return false;
        return (
          (await run(ctrBin, ['-a', socket, 'version'], { allowFailure: true, timeoutMs: 5_000 })).code === 0
        );
      },
      {
        what: `containerd socket ${socket} to answer`,
        timeoutMs: opts.startTimeoutMs ?? 30_000,
        intervalMs: 100,
        details,
      },
    );
    const c = (client = criClient(socket));
    await waitFor(
      async () => {
        const res = await c.cri.status({ verbose: false }, { deadlineMs: 5_000 });
        const conds = res.status?.conditions ?? [];
        const ready = (type: string): boolean => conds.some((x) => x.type === type && x.status);
        return ready('RuntimeReady') && (!withCni || ready('NetworkReady'));
      },
      {
        what: `containerd CRI RuntimeReady${withCni ? ' and NetworkReady' : ''}`,
        timeoutMs: 20_000,
        intervalMs: 200,
        details,
      },
    );
    if (opts.importSandboxImage ?? true) {
      await buildPauseImage(socket, sandboxImage, { snapshotter });
    }
  } catch (err) {
    const out = daemon?.output() ?? '';
    await stop();
    throw new Error(
      `${errorMessage(err)}${out && !errorMessage(err).includes(out) ? `\ncontainerd output:\n${out}` : ''}`,
    );
  }

  const d = daemon as Peer;
  const c = client as TeardownClient;
  return {
    pid: d.pid,
    socket,
    endpoint: `unix://${socket}`,
    root,
    state,
    runcRoot,
    cniConfDir,
    podLogDir,
    dir,
    subnet,
    bridge,
    sandboxImage,
    ctr,
    status: async () => {
      const res = await c.cri.status({ verbose: false }, { deadlineMs: 10_000 });
      const out: Record<string, { status: boolean; reason: string; message: string }> = {};
      for (const x of res.status?.conditions ?? [])
        out[x.type] = { status: x.status, reason: x.reason, message: x.message };
      return out;
    },
    output: () => d.output(),
    stop,
  };
}
