//! Who a cloud is, once: the id records carry (`ResourceRef::provider`), the name people
//! read, and the FOCUS `ProviderName` its cost lines carry. Collectors, the price tables,
//! the store and the server's cost series all read them from here, so that a provider's
//! names cannot drift apart between crates (the store and the server each had a copy of
//! the name → id mapping).

/// One cloud provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The id in records and the API (`aws`): `ResourceRef::provider`, `provider=` filters.
    pub id: &'static str,
    /// For people (`Amazon Web Services`).
    pub display_name: &'static str,
    /// FOCUS `ProviderName` as the provider's own billing exports write it.
    pub focus_name: &'static str,
    /// Other names seen for it in cost data (lower case).
    pub aliases: &'static [&'static str],
}

pub const AWS: Provider = Provider {
    id: "aws",
    display_name: "Amazon Web Services",
    focus_name: "Amazon Web Services",
    aliases: &["amazon"],
};

pub const GCP: Provider = Provider {
    id: "gcp",
    display_name: "Google Cloud",
    focus_name: "Google Cloud",
    aliases: &["google", "google cloud platform"],
};

pub const AZURE: Provider = Provider {
    id: "azure",
    display_name: "Microsoft Azure",
    focus_name: "Microsoft",
    aliases: &["microsoft azure"],
};

/// Every provider skymeter has a collector for.
pub const PROVIDERS: [Provider; 3] = [AWS, GCP, AZURE];

/// The provider whose id, FOCUS name, display name or alias this is (any case).
pub fn by_name(name: &str) -> Option<&'static Provider> {
    let n = name.trim().to_lowercase();
    PROVIDERS.iter().find(|p| {
        p.id == n
            || p.focus_name.to_lowercase() == n
            || p.display_name.to_lowercase() == n
            || p.aliases.contains(&n.as_str())
    })
}

/// The provider id for a FOCUS `ProviderName` (or any name [`by_name`] knows); another
/// provider's name, trimmed and lower-cased, stands for itself.
pub fn slug(provider_name: &str) -> String {
    match by_name(provider_name) {
        Some(p) => p.id.to_string(),
        None => provider_name.trim().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_ids() {
        for (name, id) in [
            ("Amazon Web Services", "aws"),
            ("amazon", "aws"),
            ("AWS", "aws"),
            ("Google Cloud", "gcp"),
            ("google cloud platform", "gcp"),
            ("Microsoft", "azure"),
            (" Microsoft Azure ", "azure"),
            ("Acme Cloud", "acme cloud"),
        ] {
            assert_eq!(slug(name), id, "{name}");
        }
        assert_eq!(by_name("gcp"), Some(&GCP));
        assert_eq!(by_name("oracle"), None);
    }
}
