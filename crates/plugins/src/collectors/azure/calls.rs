//! Self-accounting: Azure API calls per API of one collection (`azure.api_calls{api}`), and
//! the getBatch calls a dry run plans (`azure.planned_calls{api}`).

/// The token request, counted like every other call.
pub const TOKEN: &str = "entra.token";
pub const VMS: &str = "compute.virtualMachines.listAll";
/// The same list with `statusOnly=true`: the power states (and not the model).
pub const VM_STATUS: &str = "compute.virtualMachines.listAll.statusOnly";
pub const VM_SIZES: &str = "compute.virtualMachineSizes.list";
pub const DISKS: &str = "compute.disks.list";
pub const AKS: &str = "containerService.managedClusters.list";
pub const SITES: &str = "web.sites.list";
pub const SQL_SERVERS: &str = "sql.servers.list";
pub const SQL_DATABASES: &str = "sql.databases.listByServer";
pub const STORAGE: &str = "storage.storageAccounts.list";
pub const SNAPSHOTS: &str = "compute.snapshots.list";
pub const PUBLIC_IPS: &str = "network.publicIPAddresses.listAll";
pub const LOAD_BALANCERS: &str = "network.loadBalancers.listAll";
pub const NAT_GATEWAYS: &str = "network.natGateways.listAll";
pub const GET_BATCH: &str = "monitor.metrics.getBatch";
pub const COST_QUERY: &str = "costManagement.query.usage";

/// Calls of one collection per API, shared by the subscriptions' tasks.
pub use crate::common::api_calls::ApiCallCounts as ApiCalls;
