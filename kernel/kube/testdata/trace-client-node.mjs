// Test helper (`node --import`): registers a module hook that writes the file named by
// TRACE_CLIENT_NODE_MARKER as soon as any import resolves into @kubernetes/client-node.
import { register } from 'node:module';
import process from 'node:process';

const hook = `
import { writeFileSync } from 'node:fs';
let marker;
export function initialize(data) { marker = data.marker; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes('/@kubernetes/client-node/')) writeFileSync(marker, result.url);
  return result;
}
`;
register(`data:text/javascript,${encodeURIComponent(hook)}`, {
  data: { marker: process.env.TRACE_CLIENT_NODE_MARKER },
});
