/**
 * For programs that run a plugin in a process of their own and attach it to a running kernel
 * (a standalone mapper). Kept apart from the kernel's main API so that gRPC is loaded only by the
 * processes that use it.
 */
export { connectPlugin, type ConnectOptions, type RemotePlugin } from './client.js';
