import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The kernel's socket: the configured one, else a per-process path under the temp dir. */
export function kernelSocketPath(configured: string): string {
  return configured || join(tmpdir(), `kubeedge-kernel-${process.pid}.sock`);
}

export function grpcAddress(socket: string): string {
  return `unix:${socket}`;
}
