//! The shape of the code: imports between the modules of `src/` run one way. Every `use` and every
//! `crate::`/`super::` path is read from the sources, resolved through `pub use` re-exports to the
//! module that defines the item, and the resulting graph of modules must have no cycle. The GPU
//! side and the CPU reference share only the op contract (`shape`): neither imports the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path below the crate root, e.g. ["gpu", "context"]; the root is [].
type Module = Vec<String>;

struct Source {
    /// Code with comments and string literals removed.
    code: String,
}

fn strip_comments_and_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

fn collect(dir: &Path, module: &Module, sources: &mut BTreeMap<Module, Source>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file names").to_string();
        if path.is_dir() {
            if name != "bin" {
                let mut child = module.clone();
                child.push(name);
                collect(&path, &child, sources);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut this = module.clone();
            if !["mod", "lib"].contains(&name.as_str()) {
                this.push(name);
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Unit tests sit at the end of their file, in a module of their own: not the file's
            // imports.
            let code = strip_comments_and_strings(text.split("#[cfg(test)]").next().unwrap_or_default());
            sources.insert(this, Source { code });
        }
    }
}

/// `use` trees expanded to single paths: `a::{b, c::d}` gives `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("balanced braces")];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// Every path the module's code names: its `use` trees (with whether the `use` is `pub`), and the
/// `crate::`/`super::` paths written inline.
fn paths(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    // The code outside `use` statements, whose inline paths are read below: a `use` tree's
    // prefix (`crate::native::` of `crate::native::{conv2d, dense}`) names no item.
    let mut inline = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        let public = rest[..at].trim_end().ends_with("pub") || rest[..at].trim_end().ends_with(')');
        let end = at + rest[at..].find(';').expect("a use statement ends with ;");
        let tree: String = rest[at + 4..end].split_whitespace().collect::<Vec<_>>().join(" ");
        out.extend(expand(&tree.replace(" :: ", "::").replace(":: ", "::")).into_iter().map(|p| (public, p)));
        inline.push_str(&rest[..at]);
        rest = &rest[end..];
    }
    inline.push_str(rest);
    let code = inline.as_str();
    for (at, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
            continue;
        }
        let path: String = code[at..].chars().take_while(|&c| c.is_alphanumeric() || c == '_' || c == ':').collect();
        out.push((false, path));
    }
    out
}

fn find_use(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = code[from..].find("use ") {
        let at = from + i;
        let before = code[..at].chars().next_back();
        if before.is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The module a path names an item of (or is), from `module`; None for other crates.
fn resolve(module: &Module, path: &str, modules: &BTreeSet<Module>) -> Option<(Module, Option<String>)> {
    let mut segments = path.split("::").filter(|s| !s.is_empty() && *s != "*").peekable();
    let mut at: Module = match *segments.peek()? {
        "crate" => {
            segments.next();
            Vec::new()
        }
        "self" => {
            segments.next();
            module.clone()
        }
        "super" => module.clone(),
        first => {
            let mut child = module.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            module.clone()
        }
    };
    for segment in segments {
        if segment == "super" {
            at.pop();
            continue;
        }
        let mut child = at.clone();
        child.push(segment.to_string());
        if modules.contains(&child) {
            at = child;
        } else {
            return Some((at, Some(segment.to_string())));
        }
    }
    Some((at, None))
}

#[test]
fn imports_between_modules_run_one_way() {
    let mut sources = BTreeMap::new();
    collect(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &Vec::new(), &mut sources);
    let modules: BTreeSet<Module> = sources.keys().cloned().collect();
    // Names each module re-exports (`pub use child::Name`), and where they come from.
    let mut reexports: BTreeMap<(Module, String), Module> = BTreeMap::new();
    for (module, source) in &sources {
        for (public, path) in paths(&source.code) {
            if let (true, Some((from, Some(name)))) = (public, resolve(module, &path, &modules))
                && &from != module
            {
                reexports.insert((module.clone(), name), from);
            }
        }
    }
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in &sources {
        for (_, path) in paths(&source.code) {
            let Some((mut target, name)) = resolve(module, &path, &modules) else { continue };
            if let Some(name) = name {
                while let Some(from) = reexports.get(&(target.clone(), name.clone())) {
                    target = from.clone();
                }
            }
            if &target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    let show = |m: &Module| if m.is_empty() { "crate".to_string() } else { m.join("::") };

    let mut crossing = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            let sides = (from.first().map(String::as_str), to.first().map(String::as_str));
            // The three op families (WGSL kernels, native ops, reference loops) share only the op
            // contract in `shape`: none imports another.
            let family = |side: Option<&str>| matches!(side, Some("gpu" | "native" | "reference"));
            if family(sides.0) && family(sides.1) && sides.0 != sides.1 {
                crossing.push(format!("{} -> {}", show(from), show(to)));
            }
        }
    }
    assert!(
        crossing.is_empty(),
        "the GPU kernels, the native ops and the CPU reference import each other: {crossing:?}"
    );

    // Modules that reach each other through imports: every loop, grouped.
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&Module, BTreeSet<Module>> = modules.iter().map(|m| (m, reach(m))).collect();
    let mut loops: BTreeSet<Vec<String>> = BTreeSet::new();
    for module in &modules {
        if reached[module].contains(module) {
            let group = modules.iter().filter(|m| reached[module].contains(*m) && reached[*m].contains(module));
            loops.insert(group.map(show).collect());
        }
    }
    assert!(loops.is_empty(), "modules that import each other (directly or through others): {loops:?}");
    assert!(edges.len() > 20, "the scan found too few imports to be reading the sources: {edges:?}");
}
