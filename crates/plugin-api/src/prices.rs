//! Price tables behind estimated costs, as the CLI sees them: `skymeter prices <cloud> show`
//! prints any cloud's table and `skymeter prices <cloud> update` reads current prices from the
//! cloud's price API, without the CLI knowing any cloud. A collector that estimates cost
//! registers a [`PriceSource`] beside its factory (`Registry::add_price_source`).

use crate::traits::PluginError;
use skymeter_model::provider::Provider;
use skymeter_model::Resource;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One price as `prices show` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceRow {
    /// What the price is for, in the key form the collector's README documents
    /// (`ec2/m5.large/linux`, `gce/n2/vcpu`).
    pub key: String,
    pub usd: f64,
    /// The unit priced: `hour`, `GiB-month`, `request`.
    pub per: String,
}

/// A loaded price table of one cloud, whatever its layout.
pub trait PriceTable: Send + Sync {
    /// `YYYY-MM-DD`: when the prices were read.
    fn date(&self) -> &str;
    fn currency(&self) -> &str;
    /// Where the prices come from (an API and its filters, or a document).
    fn source(&self) -> &str;
    /// The regions the table prices, sorted.
    fn regions(&self) -> Vec<String>;
    /// Every price of `region`, in key order.
    fn rows(&self, region: &str) -> Vec<PriceRow>;
    /// Prices per region and kind of thing priced (`ec2`, `gce`, `vm`): the update summary.
    fn counts(&self) -> BTreeMap<String, BTreeMap<String, usize>>;
    /// The table's file form (what `load` reads back).
    fn to_json(&self) -> String;
    /// Keeps the regions `keep` accepts (`show --region`).
    fn retain_regions(&mut self, keep: &dyn Fn(&str) -> bool);

    /// What `resource`, as inventoried, costs per month of [`HOURS_PER_MONTH`] hours at the
    /// table's list prices (an instance by its type and platform, a volume by size, IOPS and
    /// throughput, an idle address by the hour), or `None` when the table has no price for
    /// it. The findings (unused, idle, oversized resources) price what they find with this.
    fn monthly_usd(&self, _resource: &Resource) -> Option<f64> {
        None
    }

    /// The sizes `resource` could run as (instance types of its family in its region, with
    /// the same platform), each with its capacity and monthly list price, cheapest first;
    /// empty when the table knows none. Rightsizing picks the cheapest that holds the load.
    fn size_options(&self, _resource: &Resource) -> Vec<SizeOption> {
        Vec::new()
    }
}

/// Hours in a month for monthly prices and savings (365 × 24 / 12), as the clouds' own
/// calculators count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// One size a resource could be resized to.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeOption {
    /// The provider's type name (`m5.large`, `n2-standard-4`, `Standard_D2s_v5`).
    pub name: String,
    pub vcpus: f64,
    pub memory_mib: f64,
    /// List price per month of [`HOURS_PER_MONTH`].
    pub monthly_usd: f64,
}

/// The options of `prices <cloud> update` that a cloud may take; each [`PriceSource`] lists
/// the ones it reads and the CLI refuses the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpdateOption {
    /// `--endpoint-url`: the price API's base URL (an emulator, a proxy).
    EndpointUrl,
    /// `--credentials-file`: a key file for a price API that needs credentials.
    CredentialsFile,
    /// `--profile`: a named credentials profile.
    Profile,
    /// `--ca-file`: extra root certificates (PEM).
    CaFile,
}

impl UpdateOption {
    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            UpdateOption::EndpointUrl => "--endpoint-url",
            UpdateOption::CredentialsFile => "--credentials-file",
            UpdateOption::Profile => "--profile",
            UpdateOption::CaFile => "--ca-file",
        }
    }
}

/// What `prices <cloud> update` asks of a source.
pub struct PriceUpdate<'a> {
    /// At least one, no duplicates.
    pub regions: &'a [String],
    /// `YYYY-MM-DD`, the fetched table's date.
    pub date: &'a str,
    pub endpoint_url: Option<&'a str>,
    pub credentials_file: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub ca_file: Option<&'a str>,
    /// Called with (what is being read, items so far) as pages arrive.
    pub progress: &'a (dyn Fn(&str, u64) + Sync),
}

/// A cloud's list prices: where its table lives, how it is read, how it is refreshed.
#[async_trait::async_trait]
pub trait PriceSource: Send + Sync {
    /// The cloud (`prices <id> …`, `<data_dir>/prices/<id>.json`).
    fn provider(&self) -> &'static Provider;
    /// The kind of prices: "on-demand", "pay-as-you-go".
    fn kind(&self) -> &'static str;
    /// A region name of this cloud, for messages.
    fn example_region(&self) -> &'static str;
    /// The price API `update` calls, as the call counts name it (`pricing:GetProducts`).
    fn api(&self) -> &'static str;
    /// What `update` counts while reading (`products`, `SKUs`).
    fn noun(&self) -> &'static str;
    /// The `update` options this cloud reads.
    fn update_options(&self) -> &'static [UpdateOption];
    /// A one-paragraph description of what `update` reads, for `--help`-like output.
    fn update_help(&self) -> &'static str;
    /// Where `update` writes and `load` looks first: `<data_dir>/prices/<id>.json`.
    fn default_path(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("prices")
            .join(format!("{}.json", self.provider().id))
    }
    /// The table in use: `explicit`, else the default path when it exists, else the table
    /// shipped in the binary.
    fn load(
        &self,
        explicit: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Box<dyn PriceTable>, PluginError>;
    /// Reads current prices of `req.regions`; `calls` counts the price API's calls.
    async fn fetch(
        &self,
        req: &PriceUpdate<'_>,
        calls: Arc<crate::api_calls::ApiCallCounts>,
    ) -> Result<Box<dyn PriceTable>, PluginError>;
}
