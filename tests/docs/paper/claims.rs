//! No free-standing claim: a sentence of the paper that says a tracker crosses the card
//! table (or does not) carries a `crosses`/`no-cross` marker, and one that says something
//! adds nothing carries a `same` marker, so that the marker checker checks the claim.
//!
//! What a sentence is, pragmatically (fenced code blocks are not read):
//! - The text is cut into blocks: a blank line ends one; a heading line, a table row and
//!   a list item (`- `, `* `, `+ `, `1. `) are each a block of their own (a list item
//!   goes on over the lines that follow it). A table's header row and its `|---|` rule
//!   are labels, not claims, and are not read.
//! - A block is cut after a `.`, `?` or `!` followed by whitespace or its end, and also
//!   after the markers that directly follow such a stop (`… cross.<!-- no-cross: x -->
//!   Next`): a marker may stand before or right after the full stop. A stop inside
//!   backticks or inside an HTML comment, or after an abbreviation (`e.g.`, `i.e.`, `vs.`,
//!   `cf.`, `Fig.`, `Sec.`, `et al.`, `approx.`, `resp.`), cuts nothing.
//! - The words of a sentence are what remains without its HTML comments and backticked
//!   spans, split at every character that is not a letter, a digit, `-` or `'`, in lower
//!   case: `cross-vCPU` is one word, not `cross`; `crossover` is not `cross`.
//!
//! The claims: the word `cross`, `crosses` or `crossed`, and `add`, `adds` or `added`
//! followed by the word `nothing`. A sentence holding one must hold a marker of the
//! matching kind, in any run (`crosses@2:` counts); whether that marker holds is the
//! marker checker's business.

use super::paper;

/// The words that claim a crossing (or its absence).
const CROSS_WORDS: [&str; 3] = ["cross", "crosses", "crossed"];
/// The words that, followed by `nothing`, claim no difference.
const ADD_WORDS: [&str; 3] = ["add", "adds", "added"];
/// Words after which a full stop ends no sentence.
const ABBREVIATIONS: [&str; 9] = [
    "e.g", "i.e", "vs", "cf", "fig", "sec", "al", "approx", "resp",
];

/// The `|---|` line under a table's header.
fn is_rule(line: &str) -> bool {
    let l = line.trim();
    l.starts_with('|') && l.contains("---") && l.chars().all(|c| "|-: ".contains(c))
}

/// A line that starts a list item.
fn is_item(line: &str) -> bool {
    let l = line.trim_start();
    let digits = l.bytes().take_while(u8::is_ascii_digit).count();
    ["- ", "* ", "+ "].iter().any(|m| l.starts_with(m))
        || (digits > 0 && l[digits..].starts_with(". "))
}

/// The paper's blocks outside fenced code: (line of their first line, from 1; their
/// lines joined by `\n`).
fn blocks(md: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = md.lines().collect();
    let (mut out, mut current, mut fenced) = (Vec::new(), None::<(usize, String)>, false);
    let mut flush = |current: &mut Option<(usize, String)>| out.extend(current.take());
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("```") {
            fenced = !fenced;
            flush(&mut current);
            continue;
        }
        let header = t.starts_with('|') && lines.get(i + 1).is_some_and(|l| is_rule(l));
        if fenced || t.is_empty() || is_rule(line) || header {
            flush(&mut current);
            continue;
        }
        let alone = t.starts_with('#') || t.starts_with('|');
        if alone || is_item(line) {
            flush(&mut current);
        }
        match current.as_mut() {
            Some((_, text)) => {
                text.push('\n');
                text.push_str(line);
            }
            None => current = Some((i + 1, line.to_string())),
        }
        if alone {
            flush(&mut current);
        }
    }
    flush(&mut current);
    out
}

/// Where the sentence whose stop is at `i` ends (exclusive), if the stop ends one: after
/// the stop and any markers right after it, when whitespace or the end follows.
fn sentence_end(text: &str, i: usize) -> Option<usize> {
    let word = text[..i].rsplit(char::is_whitespace).next().unwrap_or("");
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    if ABBREVIATIONS.contains(&word.to_lowercase().as_str()) {
        return None;
    }
    let mut end = i + 1;
    while text[end..].starts_with("<!--") {
        end += text[end..].find("-->")? + 3;
    }
    let next = text[end..].chars().next();
    next.is_none_or(char::is_whitespace).then_some(end)
}

/// The end of the HTML comment that starts at `i` of `text` (its whole rest if unclosed).
fn comment_end(text: &str, i: usize) -> usize {
    text[i..].find("-->").map_or(text.len(), |e| i + e + 3)
}

/// The sentences of one block's text: (where each starts in it, its text).
fn split_sentences(text: &str) -> Vec<(usize, &str)> {
    let (mut out, mut start, mut skip_to, mut code) = (Vec::new(), 0, 0, false);
    for (i, c) in text.char_indices() {
        if i < skip_to {
            continue;
        }
        if !code && text[i..].starts_with("<!--") {
            skip_to = comment_end(text, i);
            continue;
        }
        match c {
            '`' => code = !code,
            '.' | '?' | '!' if !code => {
                if let Some(end) = sentence_end(text, i) {
                    out.push((start, &text[start..end]));
                    (start, skip_to) = (end, end);
                }
            }
            _ => {}
        }
    }
    out.push((start, &text[start..]));
    out.retain(|(_, s)| !s.trim().is_empty());
    out
}

/// The paper's sentences outside fenced code: (line where each starts, from 1; its text).
pub(crate) fn sentences(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, block) in blocks(md) {
        for (start, s) in split_sentences(&block) {
            let lead = s.len() - s.trim_start().len();
            let at = line + block[..start + lead].matches('\n').count();
            out.push((at, s.trim().to_string()));
        }
    }
    out
}

/// `text` without its HTML comments and backticked spans (each left as a space).
fn prose(text: &str) -> String {
    let (mut out, mut skip_to, mut code) = (String::new(), 0, false);
    for (i, c) in text.char_indices() {
        if i < skip_to {
            continue;
        }
        if !code && text[i..].starts_with("<!--") {
            skip_to = comment_end(text, i);
            out.push(' ');
        } else if c == '`' {
            code = !code;
            out.push(' ');
        } else if !code {
            out.push(c);
        }
    }
    out
}

/// The words of `prose`, in lower case.
fn words(prose: &str) -> Vec<String> {
    prose
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `sentence` holds a marker of one of `kinds`, in any run.
fn has_marker(sentence: &str, kinds: &[&str]) -> bool {
    sentence.split("<!--").skip(1).any(|c| {
        c.split_once(':').is_some_and(|(kind, _)| {
            let kind = kind.trim();
            kinds.contains(&kind.split_once('@').map_or(kind, |(k, _)| k))
        })
    })
}

/// What free-standing claims `md` makes: one message per unmarked claim.
pub(crate) fn claim_errors(md: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for (line, s) in sentences(md) {
        let w = words(&prose(&s));
        let excerpt: String = s.chars().take(120).collect();
        if w.iter().any(|x| CROSS_WORDS.contains(&x.as_str()))
            && !has_marker(&s, &["crosses", "no-cross"])
        {
            errors.push(format!(
                "line {line}: a crossing is claimed without a `crosses`/`no-cross` marker: `{excerpt}`"
            ));
        }
        if w.windows(2)
            .any(|p| ADD_WORDS.contains(&p[0].as_str()) && p[1] == "nothing")
            && !has_marker(&s, &["same"])
        {
            errors.push(format!(
                "line {line}: \"adds nothing\" is claimed without a `same` marker: `{excerpt}`"
            ));
        }
    }
    errors
}

/// Every sentence of the paper that claims a crossing, or that something adds nothing,
/// carries the marker that checks it.
#[test]
fn every_crossing_and_adds_nothing_claim_of_the_paper_is_marked() {
    let errors = claim_errors(&paper());
    assert!(
        errors.is_empty(),
        "{} free-standing claims in the paper:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// The rule passes marked claims, and words that only look like claims.
#[test]
fn the_claim_rule_accepts_marked_claims_and_other_words() {
    for text in [
        "`uffd-wp[thread]` does not cross below 16,384 stores per page<!-- no-cross: uffd-wp[thread] -->.",
        "It does not cross.<!-- no-cross@3: uffd-wp[thread] --> The next sentence says nothing.",
        "Some trackers, e.g. mprotect, cross<!-- crosses: mprotect -->. Others are slower.",
        "Four trackers cross within the sweep<!-- crosses@2: mprotect -->.",
        "The page trackers add nothing measurable to a store<!-- same@2: X / y / #2 -->.",
        "It\nadds nothing<!-- same: X / y / #2 --> at all. Card marking crossed\nit<!-- crosses: x -->.",
        "The crossover is set by a dirtied page. Crossovers are listed. The cross-vCPU wake-up is slow.",
        "A `cross` in backticks, <!-- a cross in a comment --> and nothing added here.",
        "```\nit does not cross\nadds nothing\n```",
        "| tracker | resamples that cross |\n|---|---|\n| mprotect | `100%` |",
    ] {
        assert_eq!(claim_errors(text), Vec::<String>::new(), "`{text}`");
    }
}

/// The rule fails each unmarked claim, a claim with the wrong kind of marker, and a
/// claim whose marker sits in another sentence, list item or table row.
#[test]
fn the_claim_rule_rejects_free_standing_claims() {
    for text in [
        "SIGBUS and `mprotect` do not cross below 16,384 stores per page.",
        "The page trackers add nothing to a store.",
        "Card marking\nadds nothing.",
        "Async write-protect crossed it? Yes<!-- crosses: x -->.",
        "It adds nothing<!-- crosses: x -->.",
        "Card marking crosses<!-- same: X / y / #2 -->.",
        "It does not cross. It is slow<!-- no-cross: x -->.",
        "- mprotect crosses\n- uffd-wp does not<!-- no-cross: uffd-wp -->",
        "| mprotect | crosses |\n| write-watch | crosses<!-- crosses: write-watch --> |",
        "## Where the trackers cross",
    ] {
        let errors = claim_errors(text);
        assert_eq!(errors.len(), 1, "`{text}`: {errors:?}");
    }
}

/// Sentences are cut where the module says, and know the line they start on.
#[test]
fn sentences_are_cut_at_full_stops_blocks_and_markers() {
    let text = "# Title\n\nOne `a. b` ends. Two, e.g. this\none, ends.<!-- same: x --> Three\n\n\
                - item one. Item two\n- item three\n\n| h |\n|---|\n| row. cell |\n";
    let got: Vec<(usize, String)> = sentences(text);
    let want = [
        (1, "# Title"),
        (3, "One `a. b` ends."),
        (3, "Two, e.g. this\none, ends.<!-- same: x -->"),
        (4, "Three"),
        (6, "- item one."),
        (6, "Item two"),
        (7, "- item three"),
        (11, "| row."),
        (11, "cell |"),
    ];
    let want: Vec<(usize, String)> = want.iter().map(|(l, s)| (*l, s.to_string())).collect();
    assert_eq!(got, want);
}
