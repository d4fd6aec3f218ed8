//! The upload page, titled after the model's classes.

/// The upload page, self-contained; `{{TITLE}}` becomes [`page_title`].
pub(super) const PAGE: &str = include_str!("page.html");

/// The page's title from the model's classes: "Happy or sad?", "Happy, sad or angry?".
pub(super) fn page_title(classes: &[String]) -> String {
    let mut names: Vec<String> = classes.to_vec();
    if let Some(first) = names.first_mut() {
        let mut chars = first.chars();
        *first = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    }
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}?", rest.join(", ")),
        _ => format!("{}?", names.concat()),
    }
}

/// `text` safe inside HTML.
pub(super) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
