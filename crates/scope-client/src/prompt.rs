//! The PromptVersion wire type (SPEC §5), selectors and cache keys.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use scope_domain::template::Template;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Error};

/// The label of the published version.
pub const LABEL_PRODUCTION: &str = "production";
/// The label of the highest-numbered version, whatever its status.
pub const LABEL_LATEST: &str = "latest";

/// A version's lifecycle state. Unknown future states decode as `Unknown`
/// rather than failing the whole response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PromptStatus {
    /// Editable; never served as production.
    Draft,
    /// The production version (exactly one per prompt at most).
    Published,
    /// Retired; immutable.
    Archived,
    #[serde(other)]
    /// A state this SDK version does not know.
    Unknown,
}

/// Plain text or a chat template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PromptType {
    #[default]
    /// Plain text.
    Text,
    /// A chat template.
    Chat,
    #[serde(other)]
    /// A type this SDK version does not know.
    Unknown,
}

/// One immutable version of a prompt, as the Scope API returns it. Fields the
/// server adds later are accepted and ignored.
#[derive(Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptVersion {
    /// The prompt's id (`pmt_…`), the same for all its versions.
    pub prompt_id: String,
    /// This version's id (`v_…`): what [`GetPromptVersion::version_id`](crate::GetPromptVersion::version_id) takes.
    pub version_id: String,
    /// The prompt's name.
    pub name: String,
    /// This version's number (1, 2, 3… per prompt, never reused): for people, not for fetching.
    pub version: u32,
    /// The template text, with `{{variable}}` placeholders.
    pub content: String,
    #[serde(default)]
    /// The placeholders of `content`, in order of first use, without duplicates.
    pub variables: Vec<String>,
    /// Draft, published (production) or archived.
    pub status: PromptStatus,
    #[serde(default)]
    /// Whether this is the production (published) version.
    pub is_production: bool,
    #[serde(default)]
    /// Plain text or chat.
    pub prompt_type: PromptType,
    #[serde(default)]
    /// Free-form JSON set by the prompt's editors (model, temperature…).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    /// The prompt's tags.
    pub tags: Vec<String>,
    /// When the version was created.
    pub created_at: DateTime<Utc>,
    /// When the version was last changed.
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    /// When the version was last promoted to production, if ever.
    pub promoted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    /// Who promoted it (a user or key id), if anyone.
    pub promoted_by: Option<String>,
    /// `content`, parsed on first render and kept: a cached version renders
    /// without parsing again.
    #[serde(skip)]
    template: OnceLock<Template>,
}

impl PromptVersion {
    /// Whether the version is a draft.
    pub fn is_draft(&self) -> bool {
        self.status == PromptStatus::Draft
    }

    /// Whether the version is published (the production version).
    pub fn is_published(&self) -> bool {
        self.status == PromptStatus::Published
    }

    /// Whether the version is archived.
    pub fn is_archived(&self) -> bool {
        self.status == PromptStatus::Archived
    }

    /// Whether the version is a chat template.
    pub fn is_chat(&self) -> bool {
        self.prompt_type == PromptType::Chat
    }

    /// The parsed template of `content`.
    pub fn template(&self) -> &Template {
        self.template.get_or_init(|| Template::parse(self.content.as_str()))
    }

    /// Substitute `{{variables}}` in one pass (a value containing `{{x}}` is
    /// inserted as is, never expanded again), as the server does. Every
    /// missing variable is reported at once; extra variables are ignored.
    ///
    /// `vars` is any collection of name/value pairs: `&HashMap`, `&BTreeMap`,
    /// an array or `Vec` of tuples, an iterator… (a name given twice: the
    /// last value wins).
    pub fn render<I, K, V>(&self, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.render_pairs(vars, false)
    }

    /// Like [`render`](Self::render), but variables the template does not use
    /// are an error too ([`Error::UnknownVariables`]).
    pub fn render_strict<I, K, V>(&self, vars: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.render_pairs(vars, true)
    }

    fn render_pairs<I, K, V>(&self, vars: I, strict: bool) -> Result<String, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        /// Up to this many pairs, a linear scan beats hashing.
        const LINEAR_MAX: usize = 16;
        let pairs: Vec<(K, V)> = vars.into_iter().collect();
        let names = || pairs.iter().map(|(k, _)| k.as_ref());
        let rendered = if pairs.len() <= LINEAR_MAX {
            let lookup = |name: &str| pairs.iter().rev().find(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref());
            self.template().render_with(lookup, names, strict)
        } else {
            let map: HashMap<&str, &str> = pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
            self.template().render_with(|name| map.get(name).copied(), names, strict)
        };
        Ok(rendered?)
    }

    /// A metadata string, if present and a string.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(|v| v.as_str())
    }

    /// A metadata value decoded as `T`: `Ok(None)` when absent, an
    /// [`Error::Decode`] when present with another shape.
    pub fn metadata_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| {
                Error::Decode(ApiError::client_side(format!("metadata field '{key}' of prompt '{}': {e}", self.name)))
            }),
        }
    }

    /// The whole metadata object decoded as `T` (a struct of the fields your
    /// application keeps there, say `model` and `temperature`).
    pub fn metadata_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(serde_json::Value::Object(self.metadata.clone()))
            .map_err(|e| Error::Decode(ApiError::client_side(format!("metadata of prompt '{}': {e}", self.name))))
    }
}

impl PartialEq for PromptVersion {
    fn eq(&self, o: &Self) -> bool {
        // The parsed-template cache is derived from `content`; leave it out.
        self.prompt_id == o.prompt_id
            && self.version_id == o.version_id
            && self.name == o.name
            && self.version == o.version
            && self.content == o.content
            && self.variables == o.variables
            && self.status == o.status
            && self.is_production == o.is_production
            && self.prompt_type == o.prompt_type
            && self.metadata == o.metadata
            && self.tags == o.tags
            && self.created_at == o.created_at
            && self.updated_at == o.updated_at
            && self.promoted_at == o.promoted_at
            && self.promoted_by == o.promoted_by
    }
}

impl fmt::Debug for PromptVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptVersion")
            .field("prompt_id", &self.prompt_id)
            .field("version_id", &self.version_id)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("content", &self.content)
            .field("variables", &self.variables)
            .field("status", &self.status)
            .field("is_production", &self.is_production)
            .field("prompt_type", &self.prompt_type)
            .field("metadata", &self.metadata)
            .field("tags", &self.tags)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("promoted_at", &self.promoted_at)
            .field("promoted_by", &self.promoted_by)
            .finish()
    }
}

/// Which version of a prompt to fetch: a label (`production`, `latest`,
/// `staging`, …) or a version id (`v_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Selector<'a> {
    /// A label: `production`, `latest`, or another label of the prompt
    /// (`staging`, …).
    Label(&'a str),
    /// A version id (`v_…`, [`PromptVersion::version_id`]).
    Version(&'a str),
}

impl Selector<'_> {
    /// The default: the published version.
    pub const PRODUCTION: Selector<'static> = Selector::Label(LABEL_PRODUCTION);
    /// The highest-numbered version, whatever its status.
    pub const LATEST: Selector<'static> = Selector::Label(LABEL_LATEST);

    /// The label or the version id.
    pub fn as_str(&self) -> &str {
        match self {
            Selector::Label(s) | Selector::Version(s) => s,
        }
    }
}

impl Default for Selector<'_> {
    fn default() -> Self {
        Selector::PRODUCTION
    }
}

impl fmt::Display for Selector<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Label(l) => write!(f, "label {l}"),
            Selector::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// The cache key of a prompt version: `prompt:{name}:{label|version}`, the
/// same pattern as the reference SDKs.
pub fn cache_key(name: &str, selector: Selector<'_>) -> String {
    let mut key = String::with_capacity(8 + name.len() + selector.as_str().len());
    write_cache_key(&mut key, name, selector);
    key
}

pub(crate) fn write_cache_key(buf: &mut String, name: &str, selector: Selector<'_>) {
    buf.clear();
    buf.push_str("prompt:");
    buf.push_str(name);
    buf.push(':');
    buf.push_str(selector.as_str());
}
