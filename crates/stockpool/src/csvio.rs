//! `stockpool import` and `stockpool export`: items, stock, listings and components as CSV.
//!
//! Import runs in two passes so that a file with any bad row imports nothing. The first
//! pass parses every row into the store's input types (`model.rs`) and collects every
//! problem as `line N: reason`, N being the physical line in the file (the header is line
//! 1): malformed rows, unknown or missing columns, bad numbers and enum words, over-long
//! fields, rows given twice. Only a clean file reaches the second pass, which turns the
//! rows into store commands and runs them as one `Command::Batch`: all or nothing, so a
//! row the core refuses (an unknown SKU, a rule broken) also imports nothing, and the
//! refused command's index is mapped back to the line that produced it.
//!
//! Export writes the same columns (stock adds `reserved` and `available`, which import
//! accepts and ignores), so an exported file imports back unchanged.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use stockpool_core::{ItemKind, Limits};
use stockpool_store::model::{AdjustmentInput, ComponentInput, ComponentsInput, ItemInput, ItemPatch, ListingInput};
use stockpool_store::workspace::Ws;
use stockpool_store::{Command, Storage, StoreError};

/// The rows of one item's bill of materials in a components file: (line, component SKU) for
/// error reports, and the components to save.
type ComponentGroup = (Vec<(u64, String)>, Vec<ComponentInput>);

/// Data rows one import may hold. Every row becomes part of one transaction and of one
/// in-memory batch, so this bounds that transaction and the memory the import takes; a
/// catalog larger than this is imported in several files.
pub const IMPORT_ROWS_MAX: usize = 1_000_000;

/// Rows after which the progress bar appears: shorter files finish before a bar would
/// tell anything.
pub const PROGRESS_ROWS_MIN: usize = 1_000;

/// Characters in any cell of a column that is read but not stored (`reserved` and
/// `available` in a stock file): the core's longest text, so no cell is unbounded.
const CELL_LEN_MAX: usize = Limits::DEFAULT.text_len_max;

/// The reason written on the ledger for every stock level an import sets.
const IMPORT_REASON: &str = "import";

/// What a CSV file holds.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    /// One row per item: `sku` and its settings.
    Items,
    /// One row per item and warehouse: the counted `on_hand`.
    Stock,
    /// One row per listing: which store's product sells which item.
    Listings,
    /// One row per component of an item's bill of materials.
    Components,
}

/// The columns of one kind of file, in export order.
struct Columns {
    /// Every column import accepts, in the order export writes them.
    all: &'static [&'static str],
    /// Columns a file must have.
    required: &'static [&'static str],
    /// Columns export writes for information and import ignores.
    ignored: &'static [&'static str],
}

impl Kind {
    fn columns(self) -> Columns {
        match self {
            Kind::Items => Columns {
                all: &[
                    "sku",
                    "name",
                    "kind",
                    "unit",
                    "status",
                    "stock_plus_capacity",
                    "make_action",
                    "zero_policy",
                    "continue_quantity",
                    "accept_within_seconds",
                ],
                required: &["sku"],
                ignored: &[],
            },
            Kind::Stock => Columns {
                all: &["sku", "warehouse", "on_hand", "reserved", "available"],
                required: &["sku", "warehouse", "on_hand"],
                ignored: &["reserved", "available"],
            },
            Kind::Listings => Columns {
                all: &["store", "external_id", "store_sku", "sku", "status"],
                required: &["store", "external_id", "sku"],
                ignored: &[],
            },
            Kind::Components => Columns {
                all: &["sku", "component_sku", "quantity"],
                required: &["sku", "component_sku", "quantity"],
                ignored: &[],
            },
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Items => "items",
            Kind::Stock => "stock",
            Kind::Listings => "listings",
            Kind::Components => "components",
        }
    }
}

// ---- import ------------------------------------------------------------------------

/// Imports `file` into `workspace` (created if missing). Prints every bad row to stderr
/// and fails without changing anything if there is one.
pub async fn import(store: &Storage, workspace: &str, kind: Kind, file: &Path) -> anyhow::Result<()> {
    let shown = file.display();
    let bar = ProgressBar::hidden();
    let parsed = parse_file(kind, file, &bar).with_context(|| format!("reading {shown}"))?;
    let rows = match parsed {
        Ok(rows) => rows,
        Err(errors) => {
            bar.finish_and_clear();
            for e in &errors {
                eprintln!("{shown}: {e}");
            }
            anyhow::bail!("{shown}: {} problem(s) found; nothing was imported", errors.len());
        }
    };
    let count = rows.len();
    if count == 0 {
        bar.finish_and_clear();
        eprintln!("{shown}: no rows; nothing to import");
        return Ok(());
    }
    let ws = store.ensure_workspace(workspace).await.with_context(|| format!("opening workspace {workspace}"))?;
    let existing = match &rows {
        Rows::Items(items) => {
            let skus: Vec<&str> = items.iter().map(|r| r.input.sku.as_str()).collect();
            store
                .read(ws, |w| skus.iter().filter(|s| w.state.item_by_sku(s).is_some()).map(|s| s.to_string()).collect())
                .await
                .context("reading the workspace's items")?
        }
        _ => HashSet::new(),
    };
    let plan = plan(rows, &existing);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"));
    bar.set_message(format!("applying {count} rows in one transaction"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let commands: Vec<Command> = plan.iter().map(|p| p.command.clone()).collect();
    let result = store.execute(ws, Command::Batch(commands)).await;
    bar.finish_and_clear();
    match result {
        Ok(_) => {
            let updated = existing.len();
            match kind {
                Kind::Items => {
                    eprintln!("{shown}: imported {count} items ({} created, {updated} updated)", count - updated)
                }
                _ => eprintln!("{shown}: imported {count} {} rows", kind.noun()),
            }
            Ok(())
        }
        Err(StoreError::At { index, source }) => {
            let (line, reason) = locate(&plan, index, *source);
            eprintln!("{shown}: line {line}: {reason}");
            anyhow::bail!("{shown}: line {line} was refused; nothing was imported")
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("importing {shown}; nothing was imported"))),
    }
}

/// The typed rows of a clean file, each with its line.
enum Rows {
    Items(Vec<ItemRow>),
    Stock(Vec<(u64, AdjustmentInput)>),
    Listings(Vec<(u64, ListingInput)>),
    Components(Vec<ComponentRow>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Items(v) => v.len(),
            Rows::Stock(v) => v.len(),
            Rows::Listings(v) => v.len(),
            Rows::Components(v) => v.len(),
        }
    }
}

struct ItemRow {
    line: u64,
    input: ItemInput,
}

struct ComponentRow {
    line: u64,
    sku: String,
    component: ComponentInput,
}

/// One command of the batch and the rows it came from: `(line, key)`, the key being what
/// an error names when it is about that row (a component's SKU).
struct Planned {
    command: Command,
    rows: Vec<(u64, String)>,
}

/// Reads and checks the whole file. The outer error is an I/O failure; the inner one is
/// the list of bad rows.
fn parse_file(kind: Kind, file: &Path, bar: &ProgressBar) -> anyhow::Result<Result<Rows, Vec<String>>> {
    let handle = std::fs::File::open(file).context("opening the file")?;
    let bytes = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(handle);
    let mut errors = Vec::new();
    let mut record = csv::ByteRecord::new();

    if !reader.read_byte_record(&mut record).context("reading the header row")? {
        return Ok(Err(vec!["line 1: the file is empty; a header row naming the columns is required".into()]));
    }
    let header_line = record.position().map_or(1, |p| p.line());
    let columns = kind.columns();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, raw) in record.iter().enumerate() {
        let name = String::from_utf8_lossy(raw);
        let name = name.trim_start_matches('\u{feff}').trim();
        match columns.all.iter().find(|c| **c == name) {
            Some(c) if index.contains_key(c) => errors.push(format!("line {header_line}: column {c} appears twice")),
            Some(c) => {
                index.insert(c, i);
            }
            None => errors.push(format!(
                "line {header_line}: unknown column {name:?}; {} files have the columns {}",
                kind.noun(),
                columns.all.join(",")
            )),
        }
    }
    for c in columns.required {
        if !index.contains_key(c) {
            errors.push(format!("line {header_line}: the required column {c} is missing"));
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let width = record.len();

    bar.set_length(bytes);
    bar.set_style(
        ProgressStyle::with_template("{spinner} checking {msg} [{bar:40}] {percent}% ({eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let mut rows = match kind {
        Kind::Items => Rows::Items(Vec::new()),
        Kind::Stock => Rows::Stock(Vec::new()),
        Kind::Listings => Rows::Listings(Vec::new()),
        Kind::Components => Rows::Components(Vec::new()),
    };
    // Where each key was first seen, to name both lines when a row is given twice.
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let mut count = 0usize;
    while reader.read_byte_record(&mut record).context("reading a row")? {
        count += 1;
        let line = record.position().map_or(0, |p| p.line());
        if count > IMPORT_ROWS_MAX {
            errors.push(format!(
                "line {line}: the file has more than {IMPORT_ROWS_MAX} rows; split it into several files"
            ));
            break;
        }
        if count == PROGRESS_ROWS_MIN + 1 {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        if count % 256 == 0 {
            bar.set_position(record.position().map_or(0, |p| p.byte()));
            bar.set_message(format!("{count} rows"));
        }
        if record.len() != width {
            errors.push(format!("line {line}: has {} fields, but the header has {width}", record.len()));
            continue;
        }
        let mut row = Row { line, record: &record, index: &index, errors: &mut errors, bad: false };
        match &mut rows {
            Rows::Items(v) => {
                if let Some(r) = item_row(&mut row) {
                    if row.first(&mut seen, &r.input.sku, "", format!("sku {}", r.input.sku)) {
                        v.push(r);
                    }
                }
            }
            Rows::Stock(v) => {
                if let Some(r) = stock_row(&mut row) {
                    if row.first(&mut seen, &r.sku, &r.warehouse, format!("sku {} in warehouse {}", r.sku, r.warehouse))
                    {
                        v.push((line, r));
                    }
                }
            }
            Rows::Listings(v) => {
                if let Some(r) = listing_row(&mut row) {
                    let what = format!("external_id {} of store {}", r.external_id, r.store);
                    if row.first(&mut seen, &r.store, &r.external_id, what) {
                        v.push((line, r));
                    }
                }
            }
            Rows::Components(v) => {
                if let Some(r) = component_row(&mut row) {
                    let what = format!("component {} of {}", r.component.sku, r.sku);
                    if row.first(&mut seen, &r.sku, &r.component.sku, what) {
                        v.push(r);
                    }
                }
            }
        }
    }
    bar.set_position(bytes);
    if errors.is_empty() {
        Ok(Ok(rows))
    } else {
        Ok(Err(errors))
    }
}

/// One data row being parsed: reads cells by column name and records each problem.
struct Row<'a> {
    line: u64,
    record: &'a csv::ByteRecord,
    index: &'a HashMap<&'static str, usize>,
    errors: &'a mut Vec<String>,
    /// Whether any problem was found in this row.
    bad: bool,
}

impl Row<'_> {
    fn fail(&mut self, reason: String) {
        self.errors.push(format!("line {}: {reason}", self.line));
        self.bad = true;
    }

    /// The cell of `column`, or `None` when the column is absent or the cell empty.
    fn cell(&mut self, column: &str, len_max: usize) -> Option<String> {
        let raw = self.record.get(*self.index.get(column)?)?;
        if raw.is_empty() {
            return None;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            self.fail(format!("{column} is not valid UTF-8"));
            return None;
        };
        let len = text.chars().count();
        if len > len_max {
            self.fail(format!("{column} is {len} characters long; at most {len_max} are allowed"));
            return None;
        }
        Some(text.to_string())
    }

    /// A SKU, code or external id.
    fn code(&mut self, column: &str) -> Option<String> {
        self.cell(column, Limits::DEFAULT.code_len_max)
    }

    /// A code the row cannot do without.
    fn required(&mut self, column: &str) -> Option<String> {
        let before = self.errors.len();
        let value = self.code(column);
        if value.is_none() && self.errors.len() == before {
            self.fail(format!("{column} is empty; it is required"));
        }
        value
    }

    /// A whole number the row cannot do without.
    fn required_int(&mut self, column: &str, min: i64, max: i64) -> Option<i64> {
        let before = self.errors.len();
        let value = self.int(column, min, max);
        if value.is_none() && self.errors.len() == before {
            self.fail(format!("{column} is empty; it is required"));
        }
        value
    }

    fn text(&mut self, column: &str) -> Option<String> {
        self.cell(column, Limits::DEFAULT.text_len_max)
    }

    fn int(&mut self, column: &str, min: i64, max: i64) -> Option<i64> {
        let text = self.code(column)?;
        match text.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            Ok(v) => {
                self.fail(format!("{column} must be between {min} and {max}, got {v}"));
                None
            }
            Err(_) => {
                self.fail(format!("{column} must be a whole number, got {text:?}"));
                None
            }
        }
    }

    fn bool(&mut self, column: &str) -> Option<bool> {
        let text = self.code(column)?;
        match text.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.fail(format!("{column} must be true or false, got {text:?}"));
                None
            }
        }
    }

    /// One of the words of an enum as the API spells it (`production_card`).
    fn word<T: DeserializeOwned>(&mut self, column: &str, words: &[&str]) -> Option<T> {
        let text = self.code(column)?;
        match serde_json::from_value(serde_json::Value::String(text.clone())) {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(format!("{column} must be one of {}, got {text:?}", words.join(", ")));
                None
            }
        }
    }

    /// Records that this row's key was seen; false (and a problem) if an earlier row had it.
    fn first(&mut self, seen: &mut HashMap<(String, String), u64>, a: &str, b: &str, what: String) -> bool {
        match seen.get(&(a.to_string(), b.to_string())) {
            Some(earlier) => {
                let earlier = *earlier;
                self.fail(format!("{what} is already given on line {earlier}"));
                false
            }
            None => {
                seen.insert((a.to_string(), b.to_string()), self.line);
                true
            }
        }
    }

    /// Checks the cells of columns import reads but does not store.
    fn ignored(&mut self, columns: &[&str]) {
        for c in columns {
            self.cell(c, CELL_LEN_MAX);
        }
    }

    /// The row's result: `Some` only if no cell had a problem.
    fn done<T>(&self, value: T) -> Option<T> {
        (!self.bad).then_some(value)
    }
}

fn item_row(row: &mut Row) -> Option<ItemRow> {
    let limits = Limits::DEFAULT;
    let sku = row.required("sku");
    let name = row.text("name");
    let kind = row.word("kind", &["product", "material", "bundle"]);
    let unit = row.code("unit");
    let settings = ItemPatch {
        name: name.clone(),
        unit: unit.clone(),
        kind,
        status: row.word("status", &["active", "draft"]),
        stock_plus_capacity: row.bool("stock_plus_capacity"),
        make_action: row.word("make_action", &["deduct", "production_card"]),
        zero_policy: row.word("zero_policy", &["stop", "continue", "backorder", "request"]),
        continue_quantity: row.int("continue_quantity", 0, limits.quantity_max),
        accept_within_seconds: row.int("accept_within_seconds", 1, limits.deadline_seconds_max),
    };
    let line = row.line;
    let sku = sku?;
    row.done(ItemRow { line, input: ItemInput { sku, name, kind, unit, settings } })
}

fn stock_row(row: &mut Row) -> Option<AdjustmentInput> {
    let sku = row.required("sku");
    let warehouse = row.required("warehouse");
    let on_hand = row.required_int("on_hand", 0, Limits::DEFAULT.on_hand_max);
    row.ignored(Kind::Stock.columns().ignored);
    let input = AdjustmentInput {
        sku: sku?,
        warehouse: warehouse?,
        delta: None,
        set: Some(on_hand?),
        reason: Some(IMPORT_REASON.into()),
    };
    row.done(input)
}

fn listing_row(row: &mut Row) -> Option<ListingInput> {
    let store = row.required("store");
    let external_id = row.required("external_id");
    let store_sku = row.code("store_sku");
    let sku = row.required("sku");
    let status = row.word("status", &["active", "draft"]);
    let input = ListingInput { store: store?, external_id: external_id?, store_sku, sku: sku?, status };
    row.done(input)
}

fn component_row(row: &mut Row) -> Option<ComponentRow> {
    let sku = row.required("sku");
    let component_sku = row.required("component_sku");
    let quantity = row.required_int("quantity", 1, Limits::DEFAULT.quantity_max);
    let line = row.line;
    let r = ComponentRow { line, sku: sku?, component: ComponentInput { sku: component_sku?, quantity: quantity? } };
    row.done(r)
}

/// Turns clean rows into the commands of the batch. `existing`: SKUs already in the
/// workspace (an items row for one patches it; any other creates the item).
fn plan(rows: Rows, existing: &HashSet<String>) -> Vec<Planned> {
    match rows {
        Rows::Items(items) => items
            .into_iter()
            .map(|r| {
                let rows = vec![(r.line, r.input.sku.clone())];
                let command = if existing.contains(&r.input.sku) {
                    Command::PatchItem(r.input.sku, r.input.settings)
                } else {
                    Command::CreateItem(r.input)
                };
                Planned { command, rows }
            })
            .collect(),
        Rows::Stock(stock) => stock
            .into_iter()
            .map(|(line, input)| Planned { rows: vec![(line, input.sku.clone())], command: Command::Adjust(input) })
            .collect(),
        Rows::Listings(listings) => {
            // One command for all: the store validates the whole list on one copy of the
            // catalog instead of one copy per row.
            let rows = listings.iter().map(|(line, l)| (*line, l.sku.clone())).collect();
            let command = Command::CreateListings(listings.into_iter().map(|(_, l)| l).collect());
            vec![Planned { command, rows }]
        }
        Rows::Components(components) => {
            // One `PutComponents` per item, in the order the items first appear; each
            // replaces that item's bill of materials with its rows, in file order.
            let mut order: Vec<String> = Vec::new();
            let mut groups: HashMap<String, ComponentGroup> = HashMap::new();
            for r in components {
                let group = groups.entry(r.sku.clone()).or_insert_with(|| {
                    order.push(r.sku.clone());
                    (Vec::new(), Vec::new())
                });
                group.0.push((r.line, r.component.sku.clone()));
                group.1.push(r.component);
            }
            order
                .into_iter()
                .map(|sku| {
                    let (rows, components) = groups.remove(&sku).expect("every sku in order has a group");
                    Planned { command: Command::PutComponents(sku, ComponentsInput { components }), rows }
                })
                .collect()
        }
    }
}

/// The line that produced the refused command `index`, and the reason. A bulk command
/// names its element in a nested `At`; a components command is pinned to the row of the
/// component the error names, else to the item's first row.
fn locate(plan: &[Planned], index: usize, error: StoreError) -> (u64, String) {
    let Some(planned) = plan.get(index) else {
        return (0, error.to_string());
    };
    let first = planned.rows.first().map_or(0, |r| r.0);
    match error {
        StoreError::At { index: inner, source } => (planned.rows.get(inner).map_or(first, |r| r.0), source.to_string()),
        StoreError::Unknown { key, what } => {
            let line = planned.rows.iter().find(|r| r.1 == key).map_or(first, |r| r.0);
            (line, StoreError::Unknown { key, what }.to_string())
        }
        other => (first, other.to_string()),
    }
}

// ---- export ------------------------------------------------------------------------

/// Writes the workspace's `kind` as CSV to `output`, or to stdout.
pub async fn export(store: &Storage, workspace: &str, kind: Kind, output: Option<&Path>) -> anyhow::Result<()> {
    let ws = store.ensure_workspace(workspace).await.with_context(|| format!("opening workspace {workspace}"))?;
    let rows = store.read(ws, |w| export_rows(w, kind)).await.context("reading the workspace")?;
    let header = kind.columns().all;
    match output {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            write_csv(std::io::BufWriter::new(file), header, &rows)
                .with_context(|| format!("writing {}", path.display()))
        }
        None => write_csv(std::io::stdout().lock(), header, &rows).context("writing to stdout"),
    }
}

fn write_csv(out: impl Write, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(header)?;
    for r in rows {
        writer.write_record(r)?;
    }
    writer.flush()?;
    Ok(())
}

/// An enum value as the API spells it.
fn word(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// The rows of one export, sorted by their natural key so that two exports of the same
/// data are byte for byte the same.
fn export_rows(w: &Ws, kind: Kind) -> Vec<Vec<String>> {
    let state = &w.state;
    let mut rows: Vec<Vec<String>> = match kind {
        Kind::Items => state
            .items()
            .map(|i| {
                vec![
                    i.sku.clone(),
                    i.name.clone(),
                    word(i.kind),
                    i.unit.clone(),
                    word(i.status),
                    i.stock_plus_capacity.to_string(),
                    word(i.make_action),
                    word(i.zero_policy),
                    i.continue_quantity.to_string(),
                    i.accept_within_seconds.to_string(),
                ]
            })
            .collect(),
        Kind::Stock => state
            .all_stock_levels()
            .filter(|(item, _, _)| state.item(*item).is_some_and(|i| i.kind != ItemKind::Bundle))
            .map(|(item, warehouse, level)| {
                vec![
                    w.sku(item),
                    w.warehouse_code(warehouse),
                    level.on_hand.to_string(),
                    level.reserved.to_string(),
                    level.available().to_string(),
                ]
            })
            .collect(),
        Kind::Listings => state
            .listings()
            .map(|l| {
                vec![w.store_code(l.store), l.external_id.clone(), l.store_sku.clone(), w.sku(l.item), word(l.status)]
            })
            .collect(),
        Kind::Components => {
            // Components keep their bill-of-materials order, so only items are sorted.
            let mut items: Vec<_> = state.items().filter(|i| !state.components(i.id).is_empty()).collect();
            items.sort_by(|a, b| a.sku.cmp(&b.sku));
            return items
                .into_iter()
                .flat_map(|i| {
                    state.components(i.id).iter().map(|c| vec![i.sku.clone(), w.sku(c.item), c.quantity.to_string()])
                })
                .collect();
        }
    };
    rows.sort();
    rows
}
