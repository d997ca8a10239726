//! IAM OpenID Connect providers: CreateOpenIDConnectProvider, GetOpenIDConnectProvider,
//! ListOpenIDConnectProviders, DeleteOpenIDConnectProvider, AddClientIDToOpenIDConnectProvider,
//! RemoveClientIDFromOpenIDConnectProvider, UpdateOpenIDConnectProviderThumbprint; and
//! [`find_provider_by_issuer`], with which STS finds the provider of a web-identity token.
//!
//! The `url` column holds the issuer URL normalized by [`validate_issuer_url`], scheme included
//! (`https://…`, or `http://…` for a loopback issuer), so that STS fetches the issuer's keys the way
//! it was registered. The provider's ARN is `arn:aws:iam::<acct>:oidc-provider/<host><path>`, and
//! GetOpenIDConnectProvider shows the URL as AWS does: host and path, without the scheme.

use berth_aws::context::AwsContext;
use berth_aws::time::Timestamp;
use berth_aws::xml::XmlWriter;
use berth_aws::{AwsError, Output, Protocol, QueryInput, RequestContext};
use berth_store::rusqlite::types::Type;
use berth_store::rusqlite::{self, params, OptionalExtension};

use crate::common::{self, Tag};
use crate::error::IamError;
use crate::iam::IamService;
use crate::oidc::validate_issuer_url;

/// AWS's quota of OIDC providers per account (OpenIdConnectProvidersPerAccount).
pub const PROVIDERS_PER_ACCOUNT: i64 = 100;
/// AWS's quota of client ids per provider (ClientIdsPerOpenIdConnectProvider).
pub const CLIENT_IDS_PER_PROVIDER: usize = 100;
/// AWS's limit on thumbprints per provider.
pub const THUMBPRINTS_PER_PROVIDER: usize = 5;
/// AWS's limit on the length of a provider URL.
const URL_MAX_LEN: usize = 255;

const PROVIDER_COLUMNS: &str = "arn, url, client_ids, thumbprints, created_at, tags";

/// An IAM OIDC provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcProvider {
    /// `arn:aws:iam::<acct>:oidc-provider/<host><path>`.
    pub arn: String,
    /// The issuer URL, normalized (no trailing slash), with its scheme: `https://…`, or `http://…` for a
    /// loopback issuer. A token's `iss` must equal it.
    pub url: String,
    /// The audiences a token may carry in `aud`.
    pub client_ids: Vec<String>,
    /// Certificate thumbprints (40 hex digits each), kept and shown as given.
    pub thumbprints: Vec<String>,
    pub created_at: Timestamp,
    pub tags: Vec<Tag>,
}

impl OidcProvider {
    /// The URL without its scheme (`token.actions.githubusercontent.com`): how AWS shows it in
    /// GetOpenIDConnectProvider and in the provider's ARN, and the prefix of the federated condition
    /// keys of its tokens (`token.actions.githubusercontent.com:sub`).
    pub fn host_path(&self) -> &str {
        host_path(&self.url)
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OidcProvider> {
        Ok(OidcProvider {
            arn: row.get(0)?,
            url: row.get(1)?,
            client_ids: string_list_from_json(row, 2)?,
            thumbprints: string_list_from_json(row, 3)?,
            created_at: Timestamp(row.get(4)?),
            tags: common::tags_from_json(&row.get::<_, String>(5)?),
        })
    }

    fn write_xml(&self, w: &mut XmlWriter) {
        w.elem("Url", self.host_path());
        write_string_list(w, "ClientIDList", &self.client_ids);
        write_string_list(w, "ThumbprintList", &self.thumbprints);
        w.elem("CreateDate", self.created_at.iso8601());
        common::write_tags(w, &self.tags);
    }
}

/// A list of strings in the awsQuery shape: `<tag><member>text</member>…</tag>`.
fn write_string_list(w: &mut XmlWriter, tag: &str, items: &[String]) {
    w.node(tag, |w| {
        for item in items {
            w.elem("member", item);
        }
    });
}

fn string_list_from_json(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn string_list_to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn host_path(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// The ARN of the provider with this (normalized) URL.
pub fn provider_arn(aws: &AwsContext, url: &str) -> String {
    aws.global_arn("iam", &format!("oidc-provider/{}", host_path(url)))
}

fn no_such_provider(arn: &str) -> IamError {
    IamError::NoSuchEntity(format!("OpenIDConnect Provider not found for arn {arn}"))
}

/// Reads one provider by ARN: `NoSuchEntity` when absent.
pub(crate) fn get_provider(c: &rusqlite::Connection, arn: &str) -> Result<OidcProvider, IamError> {
    c.query_row(
        &format!("SELECT {PROVIDER_COLUMNS} FROM iam_oidc_providers WHERE arn = ?1"),
        [arn],
        OidcProvider::from_row,
    )
    .optional()?
    .ok_or_else(|| no_such_provider(arn))
}

/// The provider whose URL is `issuer` (a token's `iss`, e.g. `https://token.actions.githubusercontent.com`
/// or `http://127.0.0.1:PORT/x`), trailing slashes aside; `None` when the account has none. The scheme
/// must match too: an `https` provider is not found for an `http` issuer.
pub fn find_provider_by_issuer(c: &rusqlite::Connection, issuer: &str) -> Result<Option<OidcProvider>, IamError> {
    let wanted = issuer.trim_end_matches('/');
    if !wanted.contains("://") {
        return Ok(None);
    }
    let provider = c
        .query_row(
            &format!("SELECT {PROVIDER_COLUMNS} FROM iam_oidc_providers WHERE url = ?1"),
            [wanted],
            OidcProvider::from_row,
        )
        .optional()?;
    Ok(provider)
}

/// `Url`: at most 255 characters, and an issuer URL berth can use (https, or http for loopback).
fn provider_url(q: &QueryInput) -> Result<String, AwsError> {
    let url = q.required("Url")?;
    if url.chars().count() > URL_MAX_LEN {
        return Err(IamError::validation("url", url, "Member must have length less than or equal to 255").into());
    }
    validate_issuer_url(url)
        .map_err(|reason| IamError::InvalidInput(format!("Invalid Open ID Connect Provider URL: {reason}")).into())
}

/// `OpenIDConnectProviderArn`: 20–2048 characters (`arnType`).
fn provider_arn_param(q: &QueryInput) -> Result<String, AwsError> {
    let arn = q.required("OpenIDConnectProviderArn")?;
    let len = arn.chars().count();
    if len < 20 {
        return Err(IamError::validation(
            "openIDConnectProviderArn",
            arn,
            "Member must have length greater than or equal to 20",
        )
        .into());
    }
    if len > 2048 {
        return Err(IamError::validation(
            "openIDConnectProviderArn",
            arn,
            "Member must have length less than or equal to 2048",
        )
        .into());
    }
    Ok(arn.to_string())
}

/// AWS's rendering of a list value in a validation message: `[a, b]`.
fn list_value(items: &[&str]) -> String {
    format!("[{}]", items.join(", "))
}

/// One client id: 1–255 characters.
fn check_client_id(member: &str, value: &str, shown: &str) -> Result<(), IamError> {
    let len = value.chars().count();
    if len == 0 {
        return Err(IamError::validation(member, shown, &client_id_constraint(member, "greater than or equal to 1")));
    }
    if len > 255 {
        return Err(IamError::validation(member, shown, &client_id_constraint(member, "less than or equal to 255")));
    }
    Ok(())
}

fn client_id_constraint(member: &str, bound: &str) -> String {
    if member == "clientIDList" {
        format!("Member must satisfy constraint: [Member must have length {bound}]")
    } else {
        format!("Member must have length {bound}")
    }
}

/// `ClientIDList`: each 1–255 characters, at most 100 (duplicates dropped, order kept).
fn client_id_list(q: &QueryInput) -> Result<Vec<String>, IamError> {
    let items = q.list("ClientIDList");
    for id in &items {
        check_client_id("clientIDList", id, &list_value(&items))?;
    }
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for id in items {
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_string());
        }
    }
    if ids.len() > CLIENT_IDS_PER_PROVIDER {
        return Err(client_id_quota());
    }
    Ok(ids)
}

fn client_id_quota() -> IamError {
    IamError::LimitExceeded(format!(
        "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {CLIENT_IDS_PER_PROVIDER}"
    ))
}

/// `ThumbprintList`: at most 5 entries of 40 hex digits (duplicates dropped, order kept). `required`
/// for UpdateOpenIDConnectProviderThumbprint, where an empty list (`ThumbprintList=`) is allowed.
fn thumbprint_list(q: &QueryInput, required: bool) -> Result<Vec<String>, AwsError> {
    let items = q.list("ThumbprintList");
    if required && items.is_empty() && q.get("ThumbprintList").is_none() {
        return Err(AwsError::missing_parameter(Protocol::AwsQuery, "thumbprintList"));
    }
    if items.iter().any(|t| t.chars().count() != 40) {
        return Err(IamError::validation(
            "thumbprintList",
            &list_value(&items),
            "Member must satisfy constraint: [Member must have length less than or equal to 40, \
             Member must have length greater than or equal to 40]",
        )
        .into());
    }
    if items.len() > THUMBPRINTS_PER_PROVIDER {
        return Err(IamError::InvalidInput("Thumbprint list must contain fewer than 5 entries.".into()).into());
    }
    if let Some(bad) = items.iter().find(|t| !t.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(IamError::InvalidInput(format!(
            "Thumbprint {bad} is not a hex-encoded SHA-1 hash: it must be 40 hexadecimal digits."
        ))
        .into());
    }
    let mut thumbprints: Vec<String> = Vec::with_capacity(items.len());
    for t in items {
        if !thumbprints.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            thumbprints.push(t.to_string());
        }
    }
    Ok(thumbprints)
}

/// `ClientID` of Add/RemoveClientID…: 1–255 characters.
fn client_id_param(q: &QueryInput) -> Result<String, AwsError> {
    let id = q.required("ClientID")?;
    check_client_id("clientID", id, id)?;
    Ok(id.to_string())
}

/// Rewrites a provider's client-id and thumbprint lists.
fn store_lists(tx: &rusqlite::Connection, p: &OidcProvider) -> Result<(), IamError> {
    tx.execute(
        "UPDATE iam_oidc_providers SET client_ids = ?2, thumbprints = ?3 WHERE arn = ?1",
        params![p.arn, string_list_to_json(&p.client_ids), string_list_to_json(&p.thumbprints)],
    )?;
    Ok(())
}

impl IamService {
    pub(crate) async fn oidc_provider_operation(
        &self,
        ctx: &RequestContext,
        q: &QueryInput,
    ) -> Result<Output, AwsError> {
        match ctx.operation {
            "CreateOpenIDConnectProvider" => self.create_oidc_provider(ctx, q).await,
            "GetOpenIDConnectProvider" => self.get_oidc_provider(q).await,
            "ListOpenIDConnectProviders" => self.list_oidc_providers().await,
            "DeleteOpenIDConnectProvider" => self.delete_oidc_provider(q).await,
            "AddClientIDToOpenIDConnectProvider" => self.add_client_id(q).await,
            "RemoveClientIDFromOpenIDConnectProvider" => self.remove_client_id(q).await,
            "UpdateOpenIDConnectProviderThumbprint" => self.update_thumbprints(q).await,
            op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
        }
    }

    async fn create_oidc_provider(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let url = provider_url(q)?;
        let thumbprints = thumbprint_list(q, false)?;
        let client_ids = client_id_list(q)?;
        let tags = common::tags_from_query(q, "OpenIDConnectProvider")?;
        let provider = OidcProvider {
            arn: provider_arn(&ctx.aws, &url),
            url,
            client_ids,
            thumbprints,
            created_at: self.now(),
            tags,
        };
        let row = provider.clone();
        self.store
            .write(move |tx| -> Result<(), IamError> {
                let exists: Option<String> = tx
                    .query_row("SELECT arn FROM iam_oidc_providers WHERE arn = ?1", [&row.arn], |r| r.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Err(IamError::EntityAlreadyExists(format!(
                        "Provider with url {} already exists.",
                        row.url
                    )));
                }
                let count: i64 = tx.query_row("SELECT count(*) FROM iam_oidc_providers", [], |r| r.get(0))?;
                if count >= PROVIDERS_PER_ACCOUNT {
                    return Err(IamError::LimitExceeded(format!(
                        "Cannot exceed quota for OpenIdConnectProvidersPerAccount: {PROVIDERS_PER_ACCOUNT}"
                    )));
                }
                tx.execute(
                    &format!("INSERT INTO iam_oidc_providers ({PROVIDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                    params![
                        row.arn,
                        row.url,
                        string_list_to_json(&row.client_ids),
                        string_list_to_json(&row.thumbprints),
                        row.created_at.0,
                        common::tags_to_json(&row.tags)
                    ],
                )?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        tracing::info!(provider = %provider.arn, url = %provider.url, "OIDC provider created");
        let mut w = XmlWriter::new();
        w.elem("OpenIDConnectProviderArn", &provider.arn);
        common::write_tags(&mut w, &provider.tags);
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn get_oidc_provider(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = provider_arn_param(q)?;
        let provider = self.store.read(move |c| get_provider(c, &arn)).await?;
        let mut w = XmlWriter::new();
        provider.write_xml(&mut w);
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn list_oidc_providers(&self) -> Result<Output, AwsError> {
        let arns = self
            .store
            .read(move |c| -> Result<Vec<String>, IamError> {
                let mut stmt = c.prepare("SELECT arn FROM iam_oidc_providers ORDER BY arn")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        let mut w = XmlWriter::new();
        w.members("OpenIDConnectProviderList", &arns, |w, arn| {
            w.elem("Arn", arn);
        });
        Ok(Output::Xml(Some(w.into_string())))
    }

    /// Documented as idempotent, but AWS answers `NoSuchEntity` for a provider that does not exist
    /// (the error is in the operation's model, and clients such as Terraform handle it): berth does too.
    async fn delete_oidc_provider(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = provider_arn_param(q)?;
        let logged = arn.clone();
        self.store
            .write(move |tx| -> Result<(), IamError> {
                if tx.execute("DELETE FROM iam_oidc_providers WHERE arn = ?1", [&arn])? == 0 {
                    return Err(no_such_provider(&arn));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        tracing::info!(provider = %logged, "OIDC provider deleted");
        Ok(Output::Xml(None))
    }

    /// Idempotent: adding a client id the provider has changes nothing.
    async fn add_client_id(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = provider_arn_param(q)?;
        let client_id = client_id_param(q)?;
        self.store
            .write(move |tx| -> Result<(), IamError> {
                let mut p = get_provider(tx, &arn)?;
                if p.client_ids.contains(&client_id) {
                    return Ok(());
                }
                if p.client_ids.len() >= CLIENT_IDS_PER_PROVIDER {
                    return Err(client_id_quota());
                }
                p.client_ids.push(client_id);
                store_lists(tx, &p)
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    /// Idempotent: removing a client id the provider lacks changes nothing.
    async fn remove_client_id(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = provider_arn_param(q)?;
        let client_id = client_id_param(q)?;
        self.store
            .write(move |tx| -> Result<(), IamError> {
                let mut p = get_provider(tx, &arn)?;
                let before = p.client_ids.len();
                p.client_ids.retain(|x| *x != client_id);
                if p.client_ids.len() == before {
                    return Ok(());
                }
                store_lists(tx, &p)
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    /// Replaces the thumbprint list (an empty list is allowed: thumbprints are optional).
    async fn update_thumbprints(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = provider_arn_param(q)?;
        let thumbprints = thumbprint_list(q, true)?;
        self.store
            .write(move |tx| -> Result<(), IamError> {
                let mut p = get_provider(tx, &arn)?;
                p.thumbprints = thumbprints;
                store_lists(tx, &p)
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }
}
