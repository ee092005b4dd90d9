import { describe, expect, it } from 'vitest';
import { RouteTable, resolveRule, type Route, type RuleEndpointObject, type RuleObject } from './rules.js';

const ep = (name: string, type: string, properties: Record<string, string> = {}): RuleEndpointObject => ({
  metadata: { name, namespace: 'default' },
  spec: { ruleEndpointType: type, properties },
});
const endpoints = new Map(
  [
    ep('my-rest', 'rest'),
    ep('my-eventbus', 'eventbus'),
    ep('my-sb', 'servicebus', { service_port: '6666' }),
    ep('bad-sb', 'servicebus', { service_port: '70000' }),
  ].map((e) => [e.metadata!.name!, e]),
);
const lookup = (_ns: string, name: string): RuleEndpointObject | undefined => endpoints.get(name);
const rule = (name: string, spec: RuleObject['spec']): RuleObject => ({
  metadata: { name, namespace: 'default', uid: `uid-${name}` },
  spec,
});
const route = (r: RuleObject): Route => {
  const out = resolveRule(r, lookup);
  if ('problem' in out) throw new Error(out.problem);
  return out;
};

describe('resolveRule', () => {
  it("resolves the notes' rule and KubeEdge's samples", () => {
    expect(
      route(
        rule('my-rule', {
          source: 'my-rest',
          sourceResource: { path: '/test' },
          target: 'my-eventbus',
          targetResource: { topic: 'test' },
        }),
      ),
    ).toMatchObject({
      source: { type: 'rest', path: ['test'] },
      target: { type: 'eventbus', topic: 'test' },
    });
    expect(
      route(
        rule('b', {
          source: 'my-eventbus',
          sourceResource: { topic: 'test', node_name: 'edge-node' },
          target: 'my-rest',
          targetResource: { resource: 'http://a.com' },
        }),
      ),
    ).toMatchObject({
      source: { type: 'eventbus', node: 'edge-node', topic: 'default/test' },
      target: { type: 'rest', url: 'http://a.com' },
    });
    expect(
      route(
        rule('c', {
          source: 'my-rest',
          sourceResource: { path: '/source' },
          target: 'my-sb',
          targetResource: { path: '/target' },
        }),
      ),
    ).toMatchObject({ target: { type: 'servicebus', port: 6666, path: '/target' } });
  });

  it('names the field of each problem', () => {
    const problem = (spec: RuleObject['spec']): string =>
      (resolveRule(rule('x', spec), lookup) as { problem: string }).problem;
    expect(
      problem({
        source: 'nope',
        sourceResource: { path: '/a' },
        target: 'my-eventbus',
        targetResource: { topic: 't' },
      }),
    ).toBe('spec.source: RuleEndpoint "nope" not found in namespace default');
    expect(
      problem({
        source: 'my-rest',
        sourceResource: {},
        target: 'my-eventbus',
        targetResource: { topic: 't' },
      }),
    ).toBe('spec.sourceResource.path: required for rest endpoints');
    expect(
      problem({
        source: 'my-eventbus',
        sourceResource: { topic: 't' },
        target: 'my-rest',
        targetResource: { resource: 'http://a' },
      }),
    ).toBe('spec.sourceResource.node_name: required for eventbus endpoints');
    expect(
      problem({
        source: 'my-rest',
        sourceResource: { path: '/a' },
        target: 'bad-sb',
        targetResource: { path: '/t' },
      }),
    ).toBe('RuleEndpoint "bad-sb": spec.properties.service_port: expected a port 1-65535, got "70000"');
    expect(
      problem({
        source: 'my-eventbus',
        sourceResource: { topic: 't', node_name: 'n' },
        target: 'my-rest',
        targetResource: { resource: 'ftp://x' },
      }),
    ).toBe('spec.targetResource.resource: expected an absolute http(s) URL, got "ftp://x"');
    expect(
      problem({
        source: 'my-rest',
        sourceResource: { path: '/a' },
        target: 'my-rest',
        targetResource: { resource: 'http://a' },
      }),
    ).toMatch(/^spec.source\/spec.target: rest -> rest is not supported/);
    expect(
      problem({
        source: 'my-sb',
        sourceResource: { node_name: 'n' },
        target: 'my-rest',
        targetResource: { resource: 'http://a' },
      }),
    ).toBe('spec.sourceResource.target_url: required for servicebus endpoints');
  });
});

describe('RouteTable', () => {
  const rest = (name: string, path: string): Route =>
    route(
      rule(name, {
        source: 'my-rest',
        sourceResource: { path },
        target: 'my-eventbus',
        targetResource: { topic: name },
      }),
    );

  it('matches paths anchored and segment-wise, the longest rule first, with the rest as param', () => {
    const t = new RouteTable([rest('a', '/test'), rest('b', '/test/deep/'), rest('c', '/item/{id}/x')]);
    expect(t.matchRest('default', ['test'])).toMatchObject({ route: { name: 'a' }, param: [] });
    expect(t.matchRest('default', ['test', 'one', 'two'])).toMatchObject({
      route: { name: 'a' },
      param: ['one', 'two'],
    });
    expect(t.matchRest('default', ['test', 'deep', 'z'])).toMatchObject({
      route: { name: 'b' },
      param: ['z'],
    });
    expect(t.matchRest('default', ['testing'])).toBeUndefined();
    expect(t.matchRest('default', ['x', 'test'])).toBeUndefined();
    expect(t.matchRest('other', ['test'])).toBeUndefined();
    expect(t.matchRest('default', ['item', '42', 'x'])).toMatchObject({ route: { name: 'c' }, param: [] });
  });

  it('gives a path already used to the first rule and reports the other', () => {
    const t = new RouteTable([rest('old', '/same'), rest('new', 'same/')]);
    expect(t.matchRest('default', ['same'])?.route.name).toBe('old');
    expect(t.problems.get('default/new')).toBe('spec.sourceResource.path: /same is already used by rule old');
  });

  it('finds eventbus sources by node and topic, and lists one subscription per (node, topic)', () => {
    const bus = (name: string): Route =>
      route(
        rule(name, {
          source: 'my-eventbus',
          sourceResource: { topic: 'up', node_name: 'n1' },
          target: 'my-rest',
          targetResource: { resource: `http://h/${name}` },
        }),
      );
    const t = new RouteTable([bus('one'), bus('two')]);
    expect(t.matchBus('n1', 'default/up').map((r) => r.name)).toEqual(['one', 'two']);
    expect(t.matchBus('n2', 'default/up')).toEqual([]);
    expect(t.edgeSetups()).toEqual([{ type: 'eventbus', node: 'n1', resource: 'default/up' }]);
  });

  it("finds servicebus sources by node and target URL; a URL of a node used twice is the older rule's", () => {
    const call = (name: string, node = 'n1'): Route =>
      route(
        rule(name, {
          source: 'my-sb',
          sourceResource: { target_url: 'http://cloud.example/in', node_name: node },
          target: 'my-rest',
          targetResource: { resource: `http://h/${name}` },
        }),
      );
    const t = new RouteTable([call('one'), call('two'), call('three', 'n2')]);
    expect(t.matchCall('n1', 'http://cloud.example/in')?.name).toBe('one');
    expect(t.matchCall('n2', 'http://cloud.example/in')?.name).toBe('three');
    expect(t.matchCall('n1', 'http://cloud.example/other')).toBeUndefined();
    expect(t.problems.get('default/two')).toBe(
      'spec.sourceResource.target_url: http://cloud.example/in of node n1 is already used by rule default/one',
    );
    expect(t.edgeSetups()).toEqual([
      { type: 'servicebus', node: 'n1', resource: 'http://cloud.example/in' },
      { type: 'servicebus', node: 'n2', resource: 'http://cloud.example/in' },
    ]);
  });
});
