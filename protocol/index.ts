/**
 * The edge protocol's shared names: what several plugins (and mappers) must spell the same way as
 * KubeEdge does. Plugins import them from here, never copy them. The kernel does not import this
 * folder (it knows no plugin by name); this folder imports no plugin.
 */
export * from './modules.js';
export * from './connection.js';
export * from './topics.js';
export * from './twin.js';
export * from './dmi.js';
export * from './pki.js';
export * from './stream.js';
export * from './cloudcore.js';
export * from './http.js';
export * from './device.js';
