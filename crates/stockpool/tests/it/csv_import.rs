//! `stockpool import` and `stockpool export` end to end: the real binary on a fresh SQLite
//! file. Warehouses and stores have no CSV of their own, so each test seeds them through
//! the store library first; everything else goes through the command line.

use std::path::PathBuf;
use std::process::{Command, Output};
use stockpool_store::{system_clock, Storage};

/// A temporary database with warehouses `main` and `shed` and stores `etsy` and `shop` in
/// the workspaces `default` and `copy`.
struct Db {
    dir: tempfile::TempDir,
    url: String,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (store, writer) = Storage::open(&url, system_clock()).await.unwrap();
            for name in ["default", "copy"] {
                let ws = store.ensure_workspace(name).await.unwrap();
                let seed = serde_json::json!([
                    {"code": "main", "name": "Main warehouse"},
                    {"code": "shed", "name": "Garden shed"},
                ]);
                let mut commands: Vec<stockpool_store::Command> = serde_json::from_value::<Vec<_>>(seed)
                    .unwrap()
                    .into_iter()
                    .map(stockpool_store::Command::CreateWarehouse)
                    .collect();
                for (code, channel) in [("etsy", "etsy"), ("shop", "shopify")] {
                    let input = serde_json::json!({"code": code, "name": code, "channel": channel});
                    commands.push(stockpool_store::Command::CreateStore(serde_json::from_value(input).unwrap()));
                }
                store.execute(ws, stockpool_store::Command::Batch(commands)).await.unwrap();
            }
            drop(store);
            writer.await.unwrap();
        });
        Db { dir, url }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_stockpool"))
            .args(args)
            .args(["--database", &self.url])
            .current_dir(self.dir.path())
            .env("STOCKPOOL_LOG", "warn")
            .output()
            .expect("running stockpool")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Imports `text` as a `kind` file into `workspace`; returns success and stderr.
    fn import_into(&self, workspace: &str, kind: &str, text: &str) -> (bool, String) {
        let path = self.write(&format!("{kind}-in.csv"), text);
        let out = self.run(&["import", kind, path.to_str().unwrap(), "--workspace", workspace]);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    #[track_caller]
    fn import_ok(&self, workspace: &str, kind: &str, text: &str) {
        let (ok, stderr) = self.import_into(workspace, kind, text);
        assert!(ok, "importing {kind} failed:\n{stderr}");
    }

    #[track_caller]
    fn import_err(&self, kind: &str, text: &str) -> String {
        let (ok, stderr) = self.import_into("default", kind, text);
        assert!(!ok, "importing {kind} succeeded but should not have:\n{stderr}");
        stderr
    }

    #[track_caller]
    fn export(&self, workspace: &str, kind: &str) -> String {
        let out = self.run(&["export", kind, "--workspace", workspace]);
        assert!(out.status.success(), "export {kind} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[track_caller]
    fn check_clean(&self) {
        let out = self.run(&["check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("check: clean"), "check is not clean:\n{stdout}");
    }
}

const ITEMS: &str = "\
sku,name,kind,unit,status,stock_plus_capacity,make_action,zero_policy,continue_quantity,accept_within_seconds
CLAY,Stoneware clay,material,g,active,false,deduct,stop,1,172800
GLAZE-RED,\"Red glaze, glossy\",material,g,active,false,deduct,stop,1,172800
MUG-RED,Red mug,product,pcs,active,true,production_card,request,3,3600
PLATE,Side plate,product,pcs,draft,false,deduct,backorder,1,172800
SET,\"Breakfast set \"\"classic\"\"\",bundle,pcs,active,false,deduct,stop,1,172800
";

const COMPONENTS: &str = "\
sku,component_sku,quantity
MUG-RED,GLAZE-RED,20
MUG-RED,CLAY,400
SET,MUG-RED,2
SET,PLATE,1
";

const STOCK: &str = "\
sku,warehouse,on_hand,reserved,available
CLAY,main,10000,0,10000
GLAZE-RED,main,500,0,500
MUG-RED,main,4,0,4
MUG-RED,shed,6,0,6
PLATE,shed,9,0,9
";

const LISTINGS: &str = "\
store,external_id,store_sku,sku,status
etsy,1001,MUG-RED,MUG-RED,active
etsy,1002,SET,SET,draft
shop,gid-7,MUG-RED-S,MUG-RED,active
";

#[test]
fn csv_round_trip_of_every_kind() {
    let db = Db::new();
    db.import_ok("default", "items", ITEMS);
    db.import_ok("default", "components", COMPONENTS);
    db.import_ok("default", "stock", STOCK);
    db.import_ok("default", "listings", LISTINGS);
    let exported: Vec<String> =
        ["items", "components", "stock", "listings"].iter().map(|k| db.export("default", k)).collect();
    assert_eq!(exported, [ITEMS, COMPONENTS, STOCK, LISTINGS]);

    // What export wrote imports back into another workspace and exports the same.
    for (kind, text) in ["items", "components", "stock", "listings"].iter().zip(&exported) {
        db.import_ok("copy", kind, text);
    }
    let copied: Vec<String> =
        ["items", "components", "stock", "listings"].iter().map(|k| db.export("copy", k)).collect();
    assert_eq!(copied, exported);

    // --output writes the same text to a file.
    let path = db.dir.path().join("out.csv");
    let out = db.run(&["export", "stock", "--output", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), STOCK);
    db.check_clean();
}

#[test]
fn csv_items_import_patches_existing_skus_and_keeps_empty_cells() {
    let db = Db::new();
    db.import_ok("default", "items", ITEMS);
    // Only sku is required; an empty cell leaves the setting as it is (or at its default
    // for a new item). Columns may come in any order.
    db.import_ok("default", "items", "zero_policy,sku,name\ncontinue,PLATE,\n,NEW-1,\n");
    let items = db.export("default", "items");
    assert!(items.contains("\nPLATE,Side plate,product,pcs,draft,false,deduct,continue,1,172800\n"), "{items}");
    assert!(items.contains("\nNEW-1,NEW-1,product,pcs,active,false,deduct,stop,1,172800\n"), "{items}");
    // Stock import sets the counted figure, whatever was there before.
    db.import_ok("default", "stock", "sku,warehouse,on_hand\nPLATE,main,5\n");
    db.import_ok("default", "stock", "sku,warehouse,on_hand\nPLATE,main,2\n");
    assert_eq!(db.export("default", "stock"), "sku,warehouse,on_hand,reserved,available\nPLATE,main,2,0,2\n");
    db.check_clean();
}

#[test]
fn csv_file_with_two_bad_rows_reports_both_lines_and_imports_nothing() {
    let db = Db::new();
    // Line 3 has a bad kind; the quoted name on line 4 spans two physical lines, so the
    // bad number is on line 6.
    let text = "\
sku,name,kind,continue_quantity
A,Alpha,product,1
B,Beta,gadget,1
C,\"Gamma
two lines\",product,1
D,Delta,product,-5
E,Epsilon,material,2
";
    let stderr = db.import_err("items", text);
    assert!(stderr.contains("line 3: kind must be one of product, material, bundle, got \"gadget\""), "{stderr}");
    assert!(stderr.contains("line 6: continue_quantity must be between 0 and"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(stderr.matches("line ").count(), 2, "one line per problem:\n{stderr}");
    assert_eq!(db.export("default", "items"), ITEMS.lines().next().map(|h| format!("{h}\n")).unwrap());
    db.check_clean();
}

#[test]
fn csv_every_kind_of_row_problem_is_named() {
    let db = Db::new();
    let long = "X".repeat(129);
    let stderr = db.import_err(
        "stock",
        &format!("sku,warehouse,on_hand\nA,main,ten\n,main,1\nB,main\n{long},main,1\nC,main,1\nC,main,2\nD,main,\n"),
    );
    for expected in [
        "line 2: on_hand must be a whole number, got \"ten\"",
        "line 3: sku is empty; it is required",
        "line 4: has 2 fields, but the header has 3",
        "line 5: sku is 129 characters long; at most 128 are allowed",
        "line 7: sku C in warehouse main is already given on line 6",
        "line 8: on_hand is empty; it is required",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }

    let stderr = db.import_err("listings", "store,external_id,colour\netsy,1,red\n");
    assert!(stderr.contains("line 1: unknown column \"colour\""), "{stderr}");
    assert!(stderr.contains("line 1: the required column sku is missing"), "{stderr}");

    let stderr = db.import_err("components", "");
    assert!(stderr.contains("line 1: the file is empty"), "{stderr}");
}

#[test]
fn csv_row_with_an_unknown_sku_imports_nothing_and_names_its_line() {
    let db = Db::new();
    db.import_ok("default", "items", ITEMS);

    let stderr =
        db.import_err("stock", "sku,warehouse,on_hand\nCLAY,main,5\nPLATE,main,3\nNOPE,main,1\nMUG-RED,shed,2\n");
    assert!(stderr.contains("line 4: unknown item NOPE"), "{stderr}");
    assert_eq!(db.export("default", "stock"), "sku,warehouse,on_hand,reserved,available\n");

    // Listings go in as one bulk command; the line is still the refused row's.
    let stderr = db.import_err(
        "listings",
        "store,external_id,store_sku,sku,status\netsy,1,A,CLAY,\netsy,2,B,PLATE,\netsy,3,C,NOPE,\n",
    );
    assert!(stderr.contains("line 4: unknown item NOPE"), "{stderr}");
    let stderr = db.import_err("listings", "store,external_id,sku\nnowhere,1,CLAY\n");
    assert!(stderr.contains("line 2: unknown store nowhere"), "{stderr}");
    assert_eq!(db.export("default", "listings"), "store,external_id,store_sku,sku,status\n");

    // A components error names the row of the component it is about.
    let stderr =
        db.import_err("components", "sku,component_sku,quantity\nMUG-RED,CLAY,400\nSET,PLATE,1\nMUG-RED,NOPE,1\n");
    assert!(stderr.contains("line 4: unknown item NOPE"), "{stderr}");
    // A rule of the core: a product cannot contain a bundle.
    let stderr = db.import_err("components", "sku,component_sku,quantity\nPLATE,CLAY,1\nMUG-RED,SET,1\n");
    assert!(stderr.contains("line 3: bundle SET cannot be a component of MUG-RED"), "{stderr}");
    assert_eq!(db.export("default", "components"), "sku,component_sku,quantity\n");

    // An existing listing is refused too.
    db.import_ok("default", "listings", "store,external_id,sku\netsy,1,CLAY\n");
    let stderr = db.import_err("listings", "store,external_id,sku\netsy,2,PLATE\netsy,1,MUG-RED\n");
    assert!(stderr.contains("line 3: listing with external_id 1 already exists"), "{stderr}");
    assert_eq!(db.export("default", "listings"), "store,external_id,store_sku,sku,status\netsy,1,CLAY,CLAY,active\n");
    db.check_clean();
}

#[test]
fn csv_long_file_imports_in_one_go() {
    let db = Db::new();
    let mut text = String::from("sku,name\n");
    for i in 0..2500 {
        text.push_str(&format!("SKU-{i:05},Item {i}\n"));
    }
    db.import_ok("default", "items", &text);
    let exported = db.export("default", "items");
    assert_eq!(exported.lines().count(), 2501);
    assert!(exported.contains("\nSKU-02499,Item 2499,product,pcs,active,false,deduct,stop,1,172800\n"));
}
