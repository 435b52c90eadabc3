//! `kreflex new`: a plugin from a template, in the layout of `plugins/<lang>/`, that builds
//! with that language's build script and passes `kreflex test` out of the box.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// Languages with a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust (the kreflex SDK, wasm32-wasip2).
    Rust,
    /// JavaScript (componentize-js).
    Js,
    /// Python (componentize-py).
    Python,
    /// C (clang + wasi-libc, `kreflex bindgen c`, `kreflex componentize`).
    C,
    /// Go (wasip1 reactor, `kreflex componentize`).
    Go,
}

impl Lang {
    /// The folder of `plugins/` for this language.
    pub fn dir_name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::C => "c",
            Lang::Go => "go",
        }
    }

    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rust => &[
                ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
                ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
            ],
            Lang::Js => &[("app.js", include_str!("../templates/js/app.js"))],
            Lang::Python => &[("app.py", include_str!("../templates/python/app.py"))],
            Lang::C => &[("plugin.c", include_str!("../templates/c/plugin.c"))],
            Lang::Go => &[("main.go", include_str!("../templates/go/main.go"))],
        }
    }
}

/// Checks the name of a new plugin: a plugin name (see [`crate::names::check_plugin_name`])
/// that also starts with a letter, because it becomes the package name of the project
/// (a Rust crate, a Go module, a Python module), and none of those may start with a digit.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    crate::names::check_plugin_name(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("invalid plugin name {name:?} for a new project: start with a letter (it becomes a package name)");
    }
    Ok(())
}

/// Creates plugin `name` in `parent` (default: `plugins/<lang>` of this repository) and
/// returns its folder.
pub fn new_plugin(name: &str, lang: Lang, parent: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let root = crate::repo::root();
    let parent = match parent {
        Some(p) => p.to_path_buf(),
        None => root.join("plugins").join(lang.dir_name()),
    };
    anyhow::ensure!(
        parent.is_dir(),
        "{} does not exist: run kreflex new from the kreflex repository, or pass --dir",
        parent.display()
    );
    let dir = parent.join(name);
    anyhow::ensure!(!dir.exists(), "{} already exists", dir.display());
    let sdk = std::fs::canonicalize(root.join("plugins/rust/sdk")).unwrap_or_else(|_| root.join("plugins/rust/sdk"));
    for (file, template) in lang.files() {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
        let text = template.replace("{{name}}", name).replace("{{sdk}}", &sdk.display().to_string());
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(dir.join("events.json"), include_str!("../templates/events.json"))?;
    std::fs::write(dir.join("README.md"), readme(name, lang, &dir))?;
    Ok(dir)
}

fn build_command(name: &str, lang: Lang, dir: &Path) -> (String, String) {
    let d = dir.display();
    match lang {
        Lang::Rust => (
            format!("cargo build --release --target wasm32-wasip2 --manifest-path {d}/Cargo.toml"),
            format!("{d}/target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
        ),
        _ => {
            let lang_dir = crate::repo::root().join("plugins").join(lang.dir_name());
            let lang_dir = std::fs::canonicalize(&lang_dir).unwrap_or(lang_dir);
            (format!("{}/build.sh {d}", lang_dir.display()), format!("{}/target/{name}.wasm", lang_dir.display()))
        }
    }
}

/// The next steps, for the README and the terminal.
pub fn next_steps(name: &str, lang: Lang, dir: &Path) -> String {
    let (build, wasm) = build_command(name, lang, dir);
    format!(
        "build:   {build}\ntest:    kreflex test --event {events} {wasm}\ninspect: kreflex inspect {wasm}\nrun:     mkdir -p my-plugins && cp {wasm} my-plugins/ && cargo run --release -- dev --plugins my-plugins",
        events = dir.join("events.json").display()
    )
}

fn readme(name: &str, lang: Lang, dir: &Path) -> String {
    format!(
        "# {name}\n\nA kreflex plugin ({lang:?}), created by `kreflex new`. It watches `Database` objects and writes\nwhich generation it saw into their status; edit it to react to your own kinds. The contract\nis `wit/kreflex.wit` of the kreflex repository; the language guide is `plugins/{}/README.md`.\n\n```sh\n{}\n```\n\n`events.json` holds two recorded events (kubectl watch format) for `kreflex test`.\n",
        lang.dir_name(),
        next_steps(name, lang, dir)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules() {
        for good in ["a", "db-status", "x1"] {
            check_name(good).expect(good);
        }
        for bad in ["", "Db", "1x", "a_b", "a-", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn creates_the_files_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = new_plugin("demo", Lang::Python, Some(tmp.path())).expect("created");
        let app = std::fs::read_to_string(dir.join("app.py")).expect("app.py");
        assert!(app.contains("\"demo\", \"0.1.0\"") && !app.contains("{{name}}"));
        assert!(dir.join("events.json").exists() && dir.join("README.md").exists());
        assert!(new_plugin("demo", Lang::Python, Some(tmp.path())).is_err());
    }
}
