/**
 * One process of an {@link EdgeFleet} (./sim-edges.ts): its share of the simulated edges, driven
 * over the IPC channel by {@link FleetRequest}s, each answered with a {@link FleetAnswer}.
 */
import type { Message } from '../../kernel/index.js';
import {
  SimEdge,
  connectAll,
  edgeIdentities,
  type FleetAnswer,
  type FleetRequest,
  type FleetStats,
} from './sim-edges.js';

const now = (): number => performance.timeOrigin + performance.now();
const edges = new Map<string, SimEdge>();
let received = new Map<SimEdge, number>();
let latenciesNs: number[] = [];
let lastReceivedAt = 0;
let lastOpenAt = 0;

function onFrame(edge: SimEdge, frame: string): void {
  const at = now();
  lastReceivedAt = at;
  received.set(edge, (received.get(edge) ?? 0) + 1);
  const sent = Number((JSON.parse(frame) as Message<string>).content);
  if (Number.isFinite(sent)) latenciesNs.push((at - sent) * 1e6);
}

function stats(withLatencies: boolean): FleetStats {
  let open = 0;
  let total = 0;
  let min = Infinity;
  for (const e of edges.values()) {
    if (e.open) open++;
    const n = received.get(e) ?? 0;
    total += n;
    min = Math.min(min, n);
  }
  return {
    open,
    received: total,
    minReceived: min,
    lastReceivedAt,
    lastOpenAt,
    cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    latenciesNs: withLatencies ? latenciesNs : [],
  };
}

async function handle(req: FleetRequest): Promise<FleetStats | undefined> {
  switch (req.op) {
    case 'start': {
      const ca = { cert: Buffer.from(req.ca.cert, 'base64'), key: Buffer.from(req.ca.key, 'base64') };
      const identities = await edgeIdentities(ca, req.nodes);
      for (const [i, node] of req.nodes.entries())
        edges.set(node, new SimEdge(node, identities[i]!, onFrame, () => (lastOpenAt = now())));
      return undefined;
    }
    case 'connect': {
      await connectAll([...edges.values()], req.port, req.caPem);
      return undefined;
    }
    case 'send':
      edges.get(req.node)!.send(req.msg);
      return undefined;
    case 'reset':
      received = new Map();
      latenciesNs = [];
      return undefined;
    case 'stats':
      return stats(req.latencies);
  }
}

process.on('message', (m: FleetRequest & { id: number }) => {
  handle(m).then(
    (s) => process.send!({ id: m.id, ok: true, ...(s ? { stats: s } : {}) } satisfies FleetAnswer),
    (err: unknown) => process.send!({ id: m.id, ok: false, error: String(err) } satisfies FleetAnswer),
  );
});
process.on('disconnect', () => process.exit(0));
