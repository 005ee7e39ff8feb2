//! TypeScript for every type that crosses the IPC boundary, written as one
//! file, `ui/src/lib/bindings.ts`. The `bindings_are_current` test fails when
//! the committed file differs from what the Rust types produce;
//! `SPECTRUM_BLESS=1 cargo test --workspace --lib bindings` rewrites it.

use std::collections::BTreeMap;

use ts_rs::{Config, TS, TypeVisitor};

use crate::dto::*;

/// Collects declarations of a type and everything it refers to, by name.
struct Collect<'c> {
    cfg: &'c Config,
    decls: BTreeMap<String, String>,
}

impl TypeVisitor for Collect<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if T::output_path().is_none() {
            return;
        }
        let name = T::ident(self.cfg);
        if self.decls.contains_key(&name) {
            return;
        }
        self.decls.insert(name, T::decl(self.cfg));
        T::visit_dependencies(self);
    }
}

/// The file's content: a header, then `export type` declarations sorted by name.
pub fn render() -> String {
    // Integers that JSON carries (ids, counts, steps) fit a JS number.
    let cfg = Config::new().with_large_int("number");
    let mut c = Collect {
        cfg: &cfg,
        decls: BTreeMap::new(),
    };
    c.visit::<UiError>();
    c.visit::<JobEvent>();
    c.visit::<JobInfo>();
    c.visit::<Dropped>();
    c.visit::<AppInfo>();
    c.visit::<ImportRequest>();
    c.visit::<TrainDefaults>();
    c.visit::<TrainRequest>();
    c.visit::<MemoryFit>();
    c.visit::<EvalRequest>();
    c.visit::<EvalDefaults>();
    c.visit::<ReportRequest>();
    c.visit::<ReportOptions>();
    c.visit::<PickKind>();
    c.visit::<AddModelRequest>();
    c.visit::<ImportPreview>();
    c.visit::<ImportOutcome>();
    c.visit::<crate::PaperTaskView>();
    c.visit::<crate::PaperFetchRequest>();
    c.visit::<crate::PaperEvent>();
    c.visit::<crate::PaperFetched>();
    c.visit::<DatasetSummary>();
    c.visit::<TaskSummary>();
    c.visit::<TaskDetail>();
    c.visit::<TaskItem>();
    c.visit::<ModelRecord>();
    c.visit::<TrainOutcome>();
    c.visit::<DemoOutcome>();
    c.visit::<RunRecord>();
    c.visit::<RunDetail>();
    c.visit::<EvalReport>();
    c.visit::<Comparison>();
    c.visit::<PromptView>();
    let mut out = String::from(
        "// Generated from the Rust types by crates/spectrum-app/src/bindings.rs: do not edit.\n\
         // Regenerate: SPECTRUM_BLESS=1 cargo test --workspace --lib bindings\n",
    );
    for decl in c.decls.values() {
        out.push('\n');
        out.push_str("export ");
        out.push_str(decl.trim());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn bindings_are_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/bindings.ts");
        let fresh = super::render();
        if std::env::var_os("SPECTRUM_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("write bindings");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is out of date with the Rust types (fix: SPECTRUM_BLESS=1 cargo test --workspace --lib bindings, then commit it)",
            path.display()
        );
    }
}
