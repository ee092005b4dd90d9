import { describe, expect, it } from 'vitest';
import { encodeMsgTwin, msgTwinJson, sortedMap, sortedMapJson, type MsgTwin } from './types.js';

/** The direct JSON encoders of the twin-update hot path equal JSON.stringify of the Go-shaped objects. */
describe('twin JSON encoders', () => {
  const twins: MsgTwin[] = [
    {},
    {
      actual: { value: '25', metadata: { timestamp: 1732550400012 } },
      optional: true,
      metadata: { type: 'int' },
    },
    { expected: { value: 'on' }, actual: {}, optional: false, metadata: {} },
    { expected: { metadata: {} }, actual: { value: 'a"b\\c', metadata: { timestamp: 0 } } },
    {
      expected: { value: '1.5', metadata: { timestamp: 7 } },
      actual: { value: '2', metadata: { timestamp: 8 } },
      optional: true,
      metadata: { type: 'float' },
      expected_version: { cloud: 3, edge: 0 },
      actual_version: { cloud: 0, edge: 12 },
    },
    { optional: null, metadata: null, expected: null, actual_version: { cloud: 1, edge: 2 } },
  ];

  it('msgTwinJson(t) === JSON.stringify(encodeMsgTwin(t)), with and without versions', () => {
    for (const t of twins) {
      for (const withVersions of [true, false]) {
        expect(msgTwinJson(t, withVersions)).toBe(JSON.stringify(encodeMsgTwin(t, withVersions)));
        expect(JSON.parse(msgTwinJson(t, withVersions))).toEqual(encodeMsgTwin(t, withVersions));
      }
    }
  });

  it('sortedMapJson sorts keys as Go does and encodes null entries', () => {
    const m = new Map<string, MsgTwin | null>([
      ['temperature', twins[1]!],
      ['humidity', null],
      ['Alarm', twins[2]!],
    ]);
    const enc = (v: MsgTwin | null) => (v ? msgTwinJson(v, false) : 'null');
    expect(sortedMapJson(m, enc)).toBe(
      JSON.stringify(sortedMap(m, (v) => (v ? encodeMsgTwin(v, false) : null))),
    );
    expect(sortedMapJson(new Map(), enc)).toBe('{}');
    // Go sorts map keys as strings ("10" < "9"); a JS object would put integer-like keys first
    expect(
      sortedMapJson(
        new Map([
          ['9', null],
          ['10', null],
          ['a', null],
        ]),
        enc,
      ),
    ).toBe('{"10":null,"9":null,"a":null}');
  });
});
