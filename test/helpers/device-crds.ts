/** The device CRDs this project installs (`crds/`), applied to a test control plane. */
import type { ControlPlane } from '../peers/kube.js';

const FILES = ['devices_v1beta1_device', 'devices_v1beta1_devicemodel', 'devices_v1beta1_devicestatus'];

/** Applies the Device, DeviceModel and DeviceStatus CRDs and waits until kube-apiserver serves them. */
export async function applyDeviceCrds(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', ...FILES.flatMap((f) => ['-f', `crds/${f}.yaml`])]);
  await cp.waitForCrds([
    'devices.devices.kubeedge.io',
    'devicemodels.devices.kubeedge.io',
    'devicestatuses.devices.kubeedge.io',
  ]);
}
