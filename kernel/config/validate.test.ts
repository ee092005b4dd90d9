import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { edgeLayout } from '../../plugins/registry.js';
import { isKernelError } from '../errors.js';
import { parseConfig } from './index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'config-validate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The lines of the ECONFIG_INVALID message for `text`, or [] when it loads. */
function problems(text: string): string[] {
  try {
    parseConfig(edgeLayout, `database:\n  dataSource: ":memory:"\n${text}`, 'edgecore.yaml');
  } catch (err) {
    if (isKernelError(err, 'ECONFIG_INVALID')) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('values a plugin would only refuse when it starts are refused at load, with file and line', () => {
  it('eventBus: QoS, session queue, broker URLs', () => {
    expect(
      problems(
        [
          'modules:',
          '  eventBus:',
          '    mqttMode: 1',
          '    mqttQOS: 3',
          '    mqttSessionQueueSize: 0',
          '    mqttServerInternal: localhost',
          '    mqttServerExternal: http://127.0.0.1',
        ].join('\n'),
      ),
    ).toEqual([
      'modules.eventBus.mqttQOS: must be 0, 1 or 2 (an MQTT QoS), got 3 (edgecore.yaml:6)',
      'modules.eventBus.mqttSessionQueueSize: must be > 0 (messages queued per client), got 0 (edgecore.yaml:7)',
      'modules.eventBus.mqttServerInternal: expected a URL like tcp://127.0.0.1:1883, got "localhost" (edgecore.yaml:8)',
      'modules.eventBus.mqttServerExternal: expected tcp://, ssl:// or tls:// with a port, got "http://127.0.0.1" (edgecore.yaml:9)',
    ]);
    // mqttMode 2 uses only the external broker: the internal one's values are not checked.
    expect(
      problems('modules:\n  eventBus: {mqttMode: 2, mqttSessionQueueSize: -1, mqttServerInternal: x}\n'),
    ).toEqual([]);
  });

  it('eventBus: TLS files that do not exist', () => {
    const cert = path.join(tmp, 'server.crt');
    writeFileSync(cert, 'x');
    expect(
      problems(
        [
          'modules:',
          '  eventBus:',
          '    eventBusTLS:',
          '      enable: true',
          `      tlsMqttCAFile: ${path.join(tmp, 'missing-ca.crt')}`,
          `      tlsMqttCertFile: ${cert}`,
          `      tlsMqttPrivateKeyFile: ${tmp}`,
        ].join('\n'),
      ),
    ).toEqual([
      `modules.eventBus.eventBusTLS.tlsMqttCAFile: "${path.join(tmp, 'missing-ca.crt')}" does not exist (eventBusTLS.enable is true) (edgecore.yaml:7)`,
      `modules.eventBus.eventBusTLS.tlsMqttPrivateKeyFile: "${tmp}" is not a regular file (eventBusTLS.enable is true) (edgecore.yaml:9)`,
    ]);
    expect(
      problems('modules:\n  eventBus:\n    mqttMode: 0\n    mqttServerInternal: ssl://127.0.0.1:8883\n'),
    ).toEqual([
      'modules.eventBus.eventBusTLS.tlsMqttCertFile: "/etc/kubeedge/certs/server.crt" does not exist (mqttServerInternal is a TLS URL) (edgecore.yaml:4)',
      'modules.eventBus.eventBusTLS.tlsMqttPrivateKeyFile: "/etc/kubeedge/certs/server.key" does not exist (mqttServerInternal is a TLS URL) (edgecore.yaml:4)',
    ]);
  });

  it('metaManager: remoteQueryTimeout and metaServer.server', () => {
    expect(
      problems(
        [
          'modules:',
          '  metaManager:',
          '    remoteQueryTimeout: 0',
          '    metaServer:',
          '      enable: true',
          '      server: 127.0.0.1:70000',
        ].join('\n'),
      ),
    ).toEqual([
      'modules.metaManager.remoteQueryTimeout: must be a positive number of seconds, got 0 (edgecore.yaml:5)',
      'modules.metaManager.metaServer.server: expected a port between 0 and 65535, got "127.0.0.1:70000" (edgecore.yaml:8)',
    ]);
    expect(problems('modules:\n  metaManager:\n    metaServer: {enable: true, server: "no port"}\n')).toEqual(
      ['modules.metaManager.metaServer.server: expected "<host>:<port>", got "no port" (edgecore.yaml:5)'],
    );
    expect(problems('modules:\n  metaManager:\n    metaServer: {enable: true, server: "[::1]:0"}\n')).toEqual(
      [],
    );
  });

  it("deviceTwin: dmiSockPath empty, a regular file in the socket's place, a parent that is a file", () => {
    const dir = path.join(tmp, 'dmi');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'dmi.sock'), 'not a socket');
    expect(
      problems(
        ['modules:', '  deviceTwin:', `    dmiSockPath: ${dir}/`, '  edged:', '    enable: false'].join('\n'),
      ),
    ).toEqual([
      `modules.deviceTwin.dmiSockPath: the DMI socket path ${dir}/dmi.sock is a regular file; refusing to replace it, got "${dir}/" (edgecore.yaml:5)`,
    ]);
    expect(problems('modules:\n  deviceTwin:\n    dmiSockPath: ""\n')).toEqual([
      'modules.deviceTwin.dmiSockPath: must not be empty (default "/etc/kubeedge/"), got "" (edgecore.yaml:5)',
    ]);
    expect(problems('modules:\n  deviceTwin:\n    dmiSockPath: /dev/null/dmi\n')).toEqual([
      'modules.deviceTwin.dmiSockPath: the DMI socket /dev/null/dmi/dmi.sock cannot be created: a parent of /dev/null/dmi is not a directory, got "/dev/null/dmi" (edgecore.yaml:5)',
    ]);
    // disabled: not checked
    expect(problems('modules:\n  deviceTwin:\n    enable: false\n    dmiSockPath: ""\n')).toEqual([]);
  });

  it('database.dataSource: empty, or under something that is not a directory', () => {
    const lines = (source: string) => {
      try {
        parseConfig(edgeLayout, `database:\n  dataSource: ${source}\n`, 'edgecore.yaml');
      } catch (err) {
        if (isKernelError(err, 'ECONFIG_INVALID')) return err.message;
        throw err;
      }
      return '';
    };
    expect(lines('""')).toBe(
      'database.dataSource: must not be empty (the path of the SQLite database file), got "" (edgecore.yaml:2)',
    );
    expect(lines('/dev/null/x.db')).toBe(
      'database.dataSource: cannot be created: /dev/null is not a directory, got "/dev/null/x.db" (edgecore.yaml:2)',
    );
    expect(lines(tmp)).toBe(
      `database.dataSource: is a directory, not a database file, got "${tmp}" (edgecore.yaml:2)`,
    );
    expect(lines(path.join(tmp, 'new', 'dir', 'edgecore.db'))).toBe('');
  });

  it('kernel.socket: its directory must be one', () => {
    expect(problems('kernel:\n  socket: /dev/null/kernel.sock\n')).toEqual([
      'kernel.socket: cannot be created: /dev/null is not a directory, got "/dev/null/kernel.sock" (edgecore.yaml:4)',
    ]);
  });
});
