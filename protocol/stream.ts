/**
 * The stream tunnel between cloudStream and edgeStream (`kubectl logs/exec/attach`), as KubeEdge
 * v1.23.1 speaks it (`pkg/stream/{constants,message,tunnel,edgedconnection}.go`,
 * `edge/pkg/edgestream`, `cloud/pkg/cloudstream`): the edge dials
 * `wss://<modules.edgeStream.server>/v1/kubeedge/connect` with its node certificate and two headers;
 * then every websocket message (a TEXT frame, although its bytes are binary) is one tunnel message:
 * uvarint connect id, uvarint message type, data.
 */

/** Path of the tunnel server's websocket. */
export const StreamConnectPath = '/v1/kubeedge/connect';
/** Header naming the edge node (Go `SessionKeyHostNameOverride`). */
export const SessionKeyHostNameOverride = 'SessionHostNameOverride';
/** Header with the node's internal IP (Go `SessionKeyInternalIP`). */
export const SessionKeyInternalIP = 'SessionInternalIP';
/**
 * Where the edge serves the kubelet API the tunnel forwards to (KubeEdge `constants.ServerAddress`
 * / `ServerPort`, edged's server).
 */
export const EdgedServerHost = '127.0.0.1';
export const EdgedServerPort = 10350;

/** `stream.MessageType`, in KubeEdge's order (`iota`). */
export const MessageType = {
  LogsConnect: 0,
  ExecConnect: 1,
  MetricConnect: 2,
  Data: 3,
  RemoveConnect: 4,
  CloseConnect: 5,
  AttachConnect: 6,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface TunnelMessage {
  connectId: number;
  type: number;
  data: Buffer;
}

function putUvarint(out: number[], v: number): void {
  let x = v;
  while (x >= 0x80) {
    out.push((x % 0x80) | 0x80);
    x = Math.floor(x / 0x80);
  }
  out.push(x);
}

/** One tunnel message's bytes (Go `Message.Bytes`). */
export function encodeTunnelMessage(connectId: number, type: number, data?: Uint8Array): Buffer {
  const head: number[] = [];
  putUvarint(head, connectId);
  putUvarint(head, type);
  return data && data.length > 0 ? Buffer.concat([Buffer.from(head), data]) : Buffer.from(head);
}

function readUvarint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, i + 1];
    scale *= 0x80;
  }
  throw new Error('tunnel message: truncated or overlong uvarint header');
}

/** Go `ReadMessageFromTunnel`: throws on a truncated header. */
export function decodeTunnelMessage(buf: Buffer): TunnelMessage {
  const [connectId, at] = readUvarint(buf, 0);
  const [type, dataAt] = readUvarint(buf, at);
  return { connectId, type, data: buf.subarray(dataAt) };
}

/** Go's `url.URL` as encoding/json writes it (exported fields, no tags). */
export interface GoURL {
  Scheme: string;
  Opaque: string;
  User: null;
  Host: string;
  Path: string;
  RawPath: string;
  OmitHost: boolean;
  ForceQuery: boolean;
  RawQuery: string;
  Fragment: string;
  RawFragment: string;
}

/** A GoURL with the fields the tunnel uses; the others empty, in Go's field order. */
function goURL(Scheme: string, Host: string, Path: string, RawPath: string, RawQuery: string): GoURL {
  return {
    Scheme,
    Opaque: '',
    User: null,
    Host,
    Path,
    RawPath,
    OmitHost: false,
    ForceQuery: false,
    RawQuery,
    Fragment: '',
    RawFragment: '',
  };
}

/**
 * The data of a *Connect message (Go `BaseEdgedConnection`): the API server's request, its URL
 * pointed at edged's server. Go decodes keys case-insensitively, so older `MessID` spellings match.
 */
export interface EdgedConnection {
  messID: number;
  method: string;
  header: Record<string, string[]>;
  url: GoURL;
}

/** The connect data for a request the API server made (`path` and `query` as received). */
export function edgedConnection(
  messID: number,
  method: string,
  header: Record<string, string[]>,
  path: string,
  rawQuery: string,
): EdgedConnection {
  return {
    messID,
    method,
    header,
    url: goURL('http', `${EdgedServerHost}:${EdgedServerPort}`, path, '', rawQuery),
  };
}

/** Reads connect data sent by either cloudcore (keys matched case-insensitively, as Go does). */
export function parseEdgedConnection(data: Buffer): EdgedConnection {
  const raw = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
  const get = (obj: Record<string, unknown>, key: string): unknown =>
    Object.entries(obj).find(([k]) => k.toLowerCase() === key.toLowerCase())?.[1];
  const url = get(raw, 'url');
  if (typeof url !== 'object' || url === null) throw new Error('connect data: no url');
  const u = url as Record<string, unknown>;
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const header: Record<string, string[]> = {};
  const h = get(raw, 'header');
  if (typeof h === 'object' && h !== null) {
    for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
      if (Array.isArray(v)) header[k] = v.map(String);
    }
  }
  return {
    messID: Number(get(raw, 'messID') ?? 0),
    method: str(get(raw, 'method')) || 'GET',
    header,
    url: goURL(
      str(get(u, 'Scheme')),
      str(get(u, 'Host')),
      str(get(u, 'Path')),
      str(get(u, 'RawPath')),
      str(get(u, 'RawQuery')),
    ),
  };
}
