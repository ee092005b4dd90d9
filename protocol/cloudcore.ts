/**
 * Which cloudcore holds an edge node's connection, when several cloudcores serve one cluster: the
 * annotations of the Node that the holder writes (edgeController at registration, cloudHub at each
 * connection), read by the router to forward a REST call to the holder.
 */

/** KubeEdge's annotation: the holder's IP (`modules.cloudHub.advertiseAddress[0]`). */
export const CloudcoreAnnotation = 'cloudcore';
/**
 * Ours: `<ip>:<port>` of the holder's router REST entry (absent when the holder runs no router).
 * KubeEdge forwards to `<cloudcore IP>:<its own router port>`, which cannot tell apart two
 * cloudcores on one host.
 */
export const RouterAddressAnnotation = 'router.kubeedge-ts.io/address';
/** KubeEdge's router port when `modules.router.port <= 0`. */
export const DefaultRouterPort = 9443;

/** The annotations of a Node held by this cloudcore (`null`: remove the key, in a merge patch). */
export interface HolderAnnotations {
  [CloudcoreAnnotation]: string;
  [RouterAddressAnnotation]: string | null;
}

/**
 * This cloudcore's holder annotations from its config file's `modules` (the sections as loaded),
 * `localIP` when `cloudHub.advertiseAddress` names none.
 */
export function holderAnnotations(modules: Record<string, unknown>, localIP: string): HolderAnnotations {
  const hub = modules.cloudHub as { advertiseAddress?: string[] } | undefined;
  const router = modules.router as { enable?: boolean; port?: number } | undefined;
  const ip = hub?.advertiseAddress?.find((a) => a !== '') ?? localIP;
  const port = router?.port !== undefined && router.port > 0 ? router.port : DefaultRouterPort;
  return {
    [CloudcoreAnnotation]: ip,
    [RouterAddressAnnotation]:
      router?.enable === true ? `${ip.includes(':') ? `[${ip}]` : ip}:${port}` : null,
  };
}
