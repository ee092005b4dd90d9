/**
 * edgeHub's cloud connection event (edge/pkg/common/message/message.go) and the success content of
 * a response (common/constants/default.go).
 */

/** `route.source` of the connection event: `SourceNodeConnection`. */
export const SourceNodeConnection = 'edgehub';
/** `route.operation` of the connection event: `OperationNodeConnection`. */
export const OperationNodeConnection = 'connect';
/** `route.resource` of the connection event: `ResourceTypeNodeConnection`. */
export const ResourceTypeNodeConnection = 'node/connection';
/** Content of the connection event once edgeHub is connected: `CloudConnected`. */
export const CloudConnected = 'cloud_connected';
/** Content of the connection event once edgeHub lost the cloud: `CloudDisconnected`. */
export const CloudDisconnected = 'cloud_disconnected';

/**
 * The cloud-internal resource of a message for one edge node (KubeEdge's `BuildResource`):
 * `node/<node>/<resource>`; cloudHub strips the first two segments before it writes to the edge.
 */
export const nodeResource = (node: string, resource: string): string => `node/${node}/${resource}`;

/** Content of a successful response (an ACK): `MessageSuccessfulContent`. */
export const MessageSuccessfulContent = 'OK';

/** The error of a request that needs the cloud while edgeHub is not connected. */
export const ErrConnectionLost = 'connection lost between EdgeCore and CloudCore';
