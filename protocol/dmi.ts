/**
 * Where the DMI sockets are: edgecore serves DeviceManagerService on `<dmiSockPath>/dmi.sock`
 * (`modules.deviceTwin.dmiSockPath`, edge/pkg/devicetwin/dmiserver), and a mapper serves its
 * DeviceMapperService on `<dir>/<protocol>.sock` (the mapper template's `grpc_server.socket_path`).
 */
import { dirname, join } from 'node:path';

/** Default of `modules.deviceTwin.dmiSockPath`. */
export const DefaultDmiSockDir = '/etc/kubeedge/';

/** `<dir>/dmi.sock` from `modules.deviceTwin.dmiSockPath` (a directory, or an older `.sock` file path). */
export function dmiSocketPath(dmiSockPath: string | undefined): string {
  const p = dmiSockPath || DefaultDmiSockDir;
  return join(p.endsWith('.sock') ? dirname(p) : p, 'dmi.sock');
}

/** A mapper's own socket beside edgecore's: `<dir of dmi.sock>/<protocol>.sock`. */
export function mapperSocketPath(edgecoreSocket: string, protocol: string): string {
  return join(dirname(edgecoreSocket), `${protocol}.sock`);
}
