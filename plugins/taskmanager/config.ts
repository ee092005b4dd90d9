/**
 * `modules.taskManager`: a module of both edgecore.yaml (enable only) and cloudcore.yaml (buffers and
 * workers of node tasks). Config only: taskManager is not built.
 */
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, ptrObj } = configSchema;

export type EdgeTaskManagerConfig = ModuleBase;

export const edgeTaskManagerSection = defineConfigSection<EdgeTaskManagerConfig>({
  schema: sectionSchema<EdgeTaskManagerConfig>({}),
  defaults: () => ({ enable: false, runAs: 'inprocess' }),
});

export interface CloudTaskManagerConfig extends ModuleBase {
  buffer: { taskStatus: number; taskEvent: number };
  load: { taskWorkers: number };
}

export const cloudTaskManagerSection = defineConfigSection<CloudTaskManagerConfig>({
  schema: sectionSchema<CloudTaskManagerConfig>({
    buffer: ptrObj<CloudTaskManagerConfig['buffer']>({ taskStatus: int(), taskEvent: int() }),
    load: ptrObj<CloudTaskManagerConfig['load']>({ taskWorkers: int() }),
  }),
  defaults: () => ({
    enable: false,
    runAs: 'inprocess',
    buffer: { taskStatus: 1024, taskEvent: 1 },
    load: { taskWorkers: 1 },
  }),
});
