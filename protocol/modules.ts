/**
 * Beehive module names (mailbox addresses), groups and the message sources that are not modules,
 * as edgecore uses them on the wire and between modules.
 */

// Module names (edge/pkg/common/modules/names.go)
export const EdgedModuleName = 'edged';
/** edgeHub's mailbox is `websocket`, also when it speaks QUIC. */
export const EdgeHubModuleName = 'websocket';
export const EventBusModuleName = 'eventbus';
export const MetaManagerModuleName = 'metamanager';
export const DeviceTwinModuleName = 'twin';
/** Ours: KubeEdge runs the DMI server inside deviceTwin; here it is a module of its own. */
export const DmiServerModuleName = 'dmiserver';
/** KubeEdge ≤ v1.5's in-edgecore EdgeMesh (service DNS and proxy); metaManager sends it Services and Endpoints. */
export const EdgeMeshModuleName = 'edgemesh';
/** The resource types metaManager hands to edgeMesh, when it runs, instead of edged (send2EdgeMesh). */
export const MeshResourceTypes = ['service', 'endpoints'] as const;
export type MeshResourceType = (typeof MeshResourceTypes)[number];

// Groups (edge/pkg/common/modules/group.go)
export const EdgedGroup = 'edged';
export const HubGroup = 'hub';
export const BusGroup = 'bus';
export const MetaGroup = 'meta';
export const TwinGroup = 'twin';
/** Ours: the group of the DMI server module. */
export const DmiGroup = 'dmi';
export const MeshGroup = 'mesh';

// Groups that appear in messages but have no edge module (cloud/pkg/common/modules/modules.go)
export const UserGroup = 'user';
export const ResourceGroup = 'resource';

// Sources that are not module names
/** eventBus's messages from MQTT (edge/pkg/eventbus/mqtt/client.go). */
export const BusSource = 'bus';
/** metaManager's copies of device objects for deviceTwin (edge/pkg/metamanager/process.go). */
export const MetaSource = 'meta';

// The cloud's hub (cloud/pkg/common/modules/modules.go)
/** Where the cloud modules send what goes to an edge node; cloudHub routes it by the node in the resource. */
export const CloudHubModuleName = 'cloudhub';

// Cloud modules whose names edge messages carry as their source (cloud/pkg/common/modules/modules.go)
export const EdgeControllerModuleName = 'edgecontroller';
export const DeviceControllerModuleName = 'devicecontroller';
export const DynamicControllerModuleName = 'dynamiccontroller';
export const PolicyControllerModuleName = 'policycontroller';
/** The group of the cloud's dynamicController, where metaServer's requests go. */
export const DynamicControllerGroup = 'dynamiccontroller';
/** metaServer's requests to the cloud (edge/pkg/metamanager/metaserver). */
export const MetaServerSource = 'metaserver';

// Modules, groups and sources edgeHub routes cloud messages to (edge/pkg/edgehub/messagehandler)
export const ServiceBusModuleName = 'servicebus';
export const TaskManagerModuleName = 'taskmanager';
export const TaskManagerGroup = 'taskmanager';
/** Cloud → edge group of function results, routed as `resource` (edgeHub's meta handler). */
export const FuncGroup = 'func';
/** Source of the router's messages for eventBus (cloud/pkg/router/provider/eventbus). */
export const RouterEventBusSource = 'router_eventbus';
/** Source of the router's messages for serviceBus (cloud/pkg/router/provider/servicebus). */
export const RouterServiceBusSource = 'router_servicebus';
