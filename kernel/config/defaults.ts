/** KubeEdge's default certificate paths (common/constants/default.go), shared by many module sections. */
export const KubeEdgeTLS = {
  /** DefaultCAFile */
  caFile: '/etc/kubeedge/ca/rootCA.crt',
  /** DefaultCAKeyFile */
  caKeyFile: '/etc/kubeedge/ca/rootCA.key',
  /** DefaultCertFile */
  certFile: '/etc/kubeedge/certs/server.crt',
  /** DefaultKeyFile */
  keyFile: '/etc/kubeedge/certs/server.key',
} as const;
