/**
 * edgeHub: the edge end of the cloud link (module `websocket`, group `hub`). See README.md.
 */
import { CloudConnectionToken, DatabaseToken, definePlugin } from '../../kernel/index.js';
import { EdgeHubModuleName, HubGroup } from '../../protocol/index.js';
import type { EdgeHubSection } from './hub.js';

export default definePlugin<EdgeHubSection>({
  name: EdgeHubModuleName,
  group: HubGroup,
  configKey: 'edgeHub',
  requires: [DatabaseToken],
  async start(ctx) {
    const { EdgeHub } = await import('./hub.js');
    const hub = new EdgeHub({
      ctx,
      db: ctx.services.get(DatabaseToken),
      cloud: ctx.services.get(CloudConnectionToken),
    });
    hub.start();
    return {
      onMessage: (msg) => hub.upstream(msg),
      stop: () => hub.stop(),
    };
  },
});
