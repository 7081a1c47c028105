//! Self-accounting: Azure API calls per API of one collection (`azure.api_calls{api}`), and
//! the getBatch calls a dry run plans (`azure.planned_calls{api}`).

use std::collections::BTreeMap;
use std::sync::Mutex;

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
pub const GET_BATCH: &str = "monitor.metrics.getBatch";
pub const COST_QUERY: &str = "costManagement.query.usage";

/// Calls of one collection per API (every page and every retry is one call), shared by the
/// subscriptions' tasks.
#[derive(Debug, Default)]
pub struct ApiCalls {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl ApiCalls {
    pub fn count(&self, api: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(api)
            .or_default() += 1;
    }

    /// Forgets the counts (each collection reports its own calls).
    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn get(&self, api: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(api)
            .copied()
            .unwrap_or(0)
    }

    /// Every API called, in name order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, n)| (*a, *n))
            .collect()
    }
}
