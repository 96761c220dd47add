//! Spin's `{{ name }}` templates, as they appear in component variables and
//! in `allowed_outbound_hosts`: which application variables a template
//! refers to (checked when the manifest is loaded) and its expansion (when
//! the application's variables are resolved).

use anyhow::{anyhow, Result};

/// A piece of a template: literal text, or the (trimmed) name inside `{{ }}`.
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// The pieces of `template`, in order; an unmatched `{{` ends them with an error.
fn pieces(template: &str) -> impl Iterator<Item = Result<Piece<'_>>> {
    let mut rest = Some(template);
    std::iter::from_fn(move || {
        let text = rest?;
        let Some(start) = text.find("{{") else {
            rest = None;
            return Some(Ok(Piece::Text(text)));
        };
        if start > 0 {
            rest = Some(&text[start..]);
            return Some(Ok(Piece::Text(&text[..start])));
        }
        let after = &text[2..];
        let Some(end) = after.find("}}") else {
            rest = None;
            return Some(Err(anyhow!(
                "invalid template: unmatched '{{{{' in {template:?}"
            )));
        };
        rest = Some(&after[end + 2..]);
        Some(Ok(Piece::Variable(after[..end].trim())))
    })
}

/// The application variables a `{{ name }}` template refers to.
pub fn template_references(template: &str) -> Result<Vec<String>> {
    let mut refs = Vec::new();
    for piece in pieces(template) {
        if let Piece::Variable(name) = piece? {
            refs.push(name.to_string());
        }
    }
    Ok(refs)
}

/// Expands `{{ name }}` in `template` with `lookup`.
pub fn expand_template(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    for piece in pieces(template) {
        match piece? {
            Piece::Text(text) => out.push_str(text),
            Piece::Variable(name) => {
                let value =
                    lookup(name).ok_or_else(|| anyhow!("no value for variable \"{name}\""))?;
                out.push_str(&value);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand() {
        let v = expand_template("a{{ x }}b{{y}}", |n| Some(n.to_uppercase())).unwrap();
        assert_eq!(v, "aXbY");
        assert!(expand_template("a{{ x", |_| None).is_err());
    }
}
