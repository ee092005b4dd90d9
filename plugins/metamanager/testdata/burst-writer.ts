/**
 * Child process of the kill -9 test: metaManager on the SQLite file given as argv[2], fed pod
 * inserts as fast as it takes them. Prints "ACK <resource>" for every insert metaManager has
 * acknowledged to the cloud (an ACK is sent only after the row is committed). Runs until killed.
 */
import { cloudMsg, pod, startMeta } from './harness.js';

const dataSource = process.argv[2];
if (!dataSource) throw new Error('usage: burst-writer <dataSource>');
const h = await startMeta({
  dataSource,
  onCloud: (m) => {
    if (m.route.operation === 'response' && m.content === 'OK')
      process.stdout.write(`ACK ${m.route.resource}\n`);
  },
});
process.stdout.write('READY\n');
let i = 0;
for (;;) {
  for (let j = 0; j < 100; j++, i++) {
    const name = `burst-${i}`;
    await h.send(cloudMsg('insert', `default/pod/${name}`, pod(name, String(i + 1)), String(i + 1)));
  }
  await new Promise((r) => setImmediate(r)); // let stdout and the kernel's I/O run
  h.cloud.length = 0;
}
