/**
 * `modules.admission` of cloudcore.yaml: the HTTPS server of the device CRDs' conversion webhook and
 * of the Device validating webhook (KubeEdge ships its webhooks as a separate `admission` binary;
 * here it is a cloudcore plugin). Our addition: a Go cloudcore ignores the section.
 */
import { isIP } from 'node:net';
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, str } = configSchema;

export interface AdmissionConfig extends ModuleBase {
  /** Listen address. */
  address: string;
  port: number;
  /**
   * The host (IP or DNS name) kube-apiserver dials: it goes in the webhooks' URLs and in the
   * serving certificate's SANs. Empty: `address` (which then must not be 0.0.0.0 or ::).
   */
  advertiseAddress: string;
}

export const admissionSection = defineConfigSection<AdmissionConfig>({
  // our addition: never printed by --defaultconfig/--minconfig, which stay KubeEdge's
  schema: {
    ...sectionSchema<AdmissionConfig>({
      address: str(),
      port: int({ min: 1, max: 65535 }),
      advertiseAddress: str(),
    }),
    hidden: true,
  },
  defaults: () => ({
    enable: false,
    runAs: 'inprocess',
    address: '127.0.0.1',
    port: 10443,
    advertiseAddress: '',
  }),
  validate(section, r) {
    if (!section.enable) return;
    if (isIP(section.address) === 0) r.error('address', `expected an IP address, got "${section.address}"`);
    const host = section.advertiseAddress || section.address;
    if (host === '0.0.0.0' || host === '::') {
      r.error(
        'advertiseAddress',
        `required when address is ${section.address}: the host kube-apiserver dials (an IP or a DNS name of this machine)`,
      );
    }
  },
});
