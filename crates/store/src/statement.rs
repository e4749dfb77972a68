//! Database statements normalized into classes: literals, numbers, placeholders and `IN (…)`
//! lists folded to `?`, comments dropped, keywords upper-cased and whitespace made uniform, so
//! that `SELECT * FROM t WHERE id = 7` and `select *  from t where id=$1` are one class.
//!
//! The tokenizer knows the dialects the reference systems and the SDKs send: PostgreSQL
//! (`$1`, `::` casts, `E'…'` and dollar-quoted strings, `"quoted"` identifiers), SQLite (`?`,
//! `?1`, `:name`, `@name`), MySQL (`` `quoted` `` identifiers, backslash escapes, `#` comments
//! at the start of a line). Double-quoted text is kept as an identifier, as standard SQL reads it.
//! Nothing here fails: text that is not SQL still yields a stable class.

/// One token of a statement, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword, upper-cased.
    Keyword(&'static str),
    /// An identifier as written, quotes kept.
    Word(&'a str),
    /// A literal, a number or a placeholder, folded.
    Value,
    /// Punctuation or an operator, as written.
    Punct(&'a str),
}

impl Token<'_> {
    fn is_punct(&self, p: &str) -> bool {
        matches!(self, Token::Punct(x) if *x == p)
    }

    fn is_keyword(&self, k: &str) -> bool {
        matches!(self, Token::Keyword(x) if *x == k)
    }
}

/// The keywords upper-cased in a class (other words keep their case: identifiers may be
/// case-sensitive).
const KEYWORDS: &[&str] = &[
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASE",
    "COMMIT",
    "CONFLICT",
    "CREATE",
    "CROSS",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DO",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "FALSE",
    "FOR",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "ILIKE",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCK",
    "NOT",
    "NOTHING",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRIMARY",
    "RELEASE",
    "REPLACE",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHARE",
    "TABLE",
    "THEN",
    "TRANSACTION",
    "TRUE",
    "UNION",
    "UPDATE",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WITH",
];

/// The keyword `word` is, upper-cased (a binary search of [`KEYWORDS`], no allocation).
fn keyword(word: &[u8]) -> Option<&'static str> {
    const LONGEST: usize = 11;
    if word.len() < 2 || word.len() > LONGEST {
        return None;
    }
    let mut upper = [0u8; LONGEST];
    for (u, b) in upper.iter_mut().zip(word) {
        *u = b.to_ascii_uppercase();
    }
    let upper = &upper[..word.len()];
    KEYWORDS
        .binary_search_by(|k| k.as_bytes().cmp(upper))
        .ok()
        .map(|i| KEYWORDS[i])
}

/// Bytes of a word: ASCII letters, digits, `_`, `$`, and every byte of a non-ASCII character
/// (so a word never ends inside a character, and slicing at token ends is always valid).
fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Splits a statement into tokens, dropping comments and whitespace.
fn tokenize(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let n = bytes.len();
    let mut tokens = Vec::with_capacity(n / 3 + 1);
    let mut i = 0;
    let mut line_start = true;
    while i < n {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c.is_ascii_whitespace() {
            line_start |= c == b'\n';
            i += 1;
            continue;
        }
        let at_line_start = std::mem::replace(&mut line_start, false);
        if (c == b'-' && next == Some(b'-')) || (c == b'#' && at_line_start) {
            while i < n && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            // Block comments, sqlcommenter's `/*traceparent='…'*/` among them.
            i = sql[i + 2..].find("*/").map_or(n, |at| i + 2 + at + 2);
        } else if c == b'\''
            || (matches!(c, b'e' | b'E' | b'n' | b'N' | b'x' | b'X') && next == Some(b'\''))
        {
            i = skip_string(bytes, if c == b'\'' { i } else { i + 1 });
            tokens.push(Token::Value);
        } else if c == b'$'
            && let Some(end) = dollar_quoted(sql, i)
        {
            i = end;
            tokens.push(Token::Value);
        } else if c == b'?' || (c == b'$' && next.is_some_and(|b| b.is_ascii_digit())) {
            // `?`, `?1` (SQLite) and `$1` (PostgreSQL) placeholders.
            i += 1;
            while i < n && bytes[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Value);
        } else if c == b'%' && next == Some(b's') {
            i += 2;
            tokens.push(Token::Value);
        } else if (c == b':' || c == b'@') && next.is_some_and(is_word_start) {
            // A named placeholder; `::` casts are handled below as punctuation.
            i += 1;
            while i < n && is_word_byte(bytes[i]) {
                i += 1;
            }
            tokens.push(Token::Value);
        } else if c.is_ascii_digit()
            || (c == b'.' && next.is_some_and(|b| b.is_ascii_digit()))
            || (c == b'-' && next.is_some_and(|b| b.is_ascii_digit()) && sign_allowed(&tokens))
        {
            i = skip_number(bytes, i);
            tokens.push(Token::Value);
        } else if c == b'"' || c == b'`' || c == b'[' {
            let close = if c == b'[' { b']' } else { c };
            let start = i;
            i += 1;
            while i < n && bytes[i] != close {
                i += 1;
            }
            i = (i + 1).min(n);
            tokens.push(Token::Word(&sql[start..i]));
        } else if is_word_start(c) {
            let start = i;
            while i < n && is_word_byte(bytes[i]) {
                i += 1;
            }
            let word = &sql[start..i];
            tokens.push(match keyword(word.as_bytes()) {
                Some(k) => Token::Keyword(k),
                None => Token::Word(word),
            });
        } else {
            let two = bytes.get(i..i + 2).unwrap_or_default();
            let len = if [b"::", b"<=", b">=", b"<>", b"!=", b"||", b"->"]
                .iter()
                .any(|op| op.as_slice() == two)
            {
                2
            } else {
                1
            };
            // ASCII punctuation: `i + len` is a character boundary.
            let op = &sql[i..i + len];
            i += len;
            if op != ";" {
                tokens.push(Token::Punct(op));
            }
        }
    }
    tokens
}

/// Past a quoted string starting at `start` (`''` and backslash escapes inside).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of a PostgreSQL dollar-quoted string (`$$…$$`, `$tag$…$tag$`) starting at `start`.
fn dollar_quoted(sql: &str, start: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    if bytes.get(start + 1).is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    if bytes.get(i) != Some(&b'$') {
        return None;
    }
    let tag = &sql[start..=i];
    Some(
        sql[i + 1..]
            .find(tag)
            .map_or(bytes.len(), |at| i + 1 + at + tag.len()),
    )
}

/// Whether a `-` before a digit is a sign (after an operator, a comma, `(` or a keyword).
fn sign_allowed(tokens: &[Token<'_>]) -> bool {
    match tokens.last() {
        None | Some(Token::Keyword(_)) => true,
        Some(Token::Punct(p)) => *p != ")",
        Some(Token::Word(_) | Token::Value) => false,
    }
}

fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if bytes[i] == b'-' {
        i += 1;
    }
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < bytes.len() {
        let c = bytes[i];
        let exponent_sign = matches!(c, b'+' | b'-') && matches!(bytes[i - 1], b'e' | b'E');
        if c.is_ascii_digit() || c == b'.' || matches!(c, b'e' | b'E') || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Folds `IN (?, ?, …)` to `IN (?)` and repeated `VALUES` rows to one.
fn fold_lists(tokens: Vec<Token<'_>>) -> Vec<Token<'_>> {
    let mut out: Vec<Token<'_>> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let after_in = out.last().is_some_and(|t| t.is_keyword("IN"));
        if after_in && tokens[i].is_punct("(") {
            // A list of values only (not a sub-select) becomes one `?`.
            let mut j = i + 1;
            let mut only_values = true;
            while j < tokens.len() && !tokens[j].is_punct(")") {
                only_values &= tokens[j] == Token::Value || tokens[j].is_punct(",");
                j += 1;
            }
            if only_values && j < tokens.len() {
                out.extend([Token::Punct("("), Token::Value, Token::Punct(")")]);
                i = j + 1;
                continue;
            }
        }
        let row_follows = tokens[i].is_punct(",")
            && tokens.get(i + 1).is_some_and(|t| t.is_punct("("))
            && out.last().is_some_and(|t| t.is_punct(")"));
        if row_follows && let Some(row) = last_values_row(&out) {
            let len = out.len() - row;
            if tokens.get(i + 1..i + 1 + len) == Some(&out[row..]) {
                i += 1 + len;
                continue;
            }
        }
        out.push(tokens[i]);
        i += 1;
    }
    out
}

/// Where the last `( … )` row of a `VALUES` list starts in `out`, when `out` ends in one.
fn last_values_row(out: &[Token<'_>]) -> Option<usize> {
    let open = out.iter().rposition(|t| t.is_punct("("))?;
    let is_row = match open.checked_sub(1).map(|b| &out[b]) {
        Some(t) => t.is_keyword("VALUES") || t.is_punct(","),
        None => false,
    };
    let values_only = out[open..]
        .iter()
        .all(|t| !matches!(t, Token::Word(_) | Token::Keyword(_)));
    (is_row && values_only).then_some(open)
}

fn render(tokens: &[Token<'_>], capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut prev: Option<&Token<'_>> = None;
    for t in tokens {
        let text = match t {
            Token::Keyword(k) => k,
            Token::Word(w) => *w,
            Token::Value => "?",
            Token::Punct(p) => *p,
        };
        let glue_before = matches!(t, Token::Punct(p) if matches!(*p, "," | ")" | "." | "::"));
        let glue_after = match prev {
            Some(Token::Punct(p)) => matches!(*p, "(" | "." | "::"),
            // A function call (`count(*)`), not a keyword before a list (`IN (?)`).
            Some(Token::Word(_)) => t.is_punct("("),
            _ => false,
        };
        if prev.is_some() && !glue_before && !glue_after {
            out.push(' ');
        }
        out.push_str(text);
        prev = Some(t);
    }
    out
}

/// The class of a statement: `select * from t where id = 7 -- x` is `SELECT * FROM t WHERE id = ?`.
pub fn normalize(statement: &str) -> String {
    render(&fold_lists(tokenize(statement)), statement.len())
}

/// The tables a statement names after `FROM`, `JOIN`, `INTO`, `UPDATE` and `TABLE`, quotes
/// removed, each once, in order.
pub fn tables(statement: &str) -> Vec<String> {
    let tokens = tokenize(statement);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let opens = matches!(
            tokens[i],
            Token::Keyword("FROM" | "JOIN" | "INTO" | "UPDATE" | "TABLE")
        );
        i += 1;
        if !opens {
            continue;
        }
        let mut name = String::new();
        while let Some(Token::Word(w)) = tokens.get(i) {
            name.push_str(w.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']')));
            if tokens.get(i + 1).is_some_and(|t| t.is_punct(".")) {
                name.push('.');
                i += 2;
            } else {
                i += 1;
                break;
            }
        }
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_statements_fold_to_their_class() {
        let table: &[(&str, &str)] = &[
            // PostgreSQL (tokio-postgres, psycopg, the seeds' apps)
            (
                "SELECT id, title FROM placements WHERE video_id = $1",
                "SELECT id, title FROM placements WHERE video_id = ?",
            ),
            (
                "select id,title from placements where video_id=42",
                "SELECT id, title FROM placements WHERE video_id = ?",
            ),
            (
                "SELECT * FROM \"Orders\" o JOIN items i ON i.order_id = o.id WHERE o.id IN (1, 2, 3)",
                "SELECT * FROM \"Orders\" o JOIN items i ON i.order_id = o.id WHERE o.id IN (?)",
            ),
            (
                "SELECT * FROM t WHERE id IN ($1, $2, $3) AND created_at > now() - interval '1 day'",
                "SELECT * FROM t WHERE id IN (?) AND created_at > now() - interval ?",
            ),
            (
                "INSERT INTO orders (id, total) VALUES ($1, $2) RETURNING id",
                "INSERT INTO orders(id, total) VALUES (?, ?) RETURNING id",
            ),
            (
                "SELECT $1::text, E'it\\'s', $$dollar 'quoted'$$, $tag$x$tag$",
                "SELECT ?::text, ?, ?, ?",
            ),
            (
                "UPDATE stock SET qty = qty - 1, price = -2.5e3 WHERE sku = 'A''B' ;",
                "UPDATE stock SET qty = qty - ?, price = ? WHERE sku = ?",
            ),
            // sqlcommenter appends the trace context in a comment
            (
                "SELECT * FROM users WHERE id = 7 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',route='%2Fusers'*/",
                "SELECT * FROM users WHERE id = ?",
            ),
            (
                "-- load the user\nSELECT /* hint */ name\n\tFROM users   WHERE id = 0x1F",
                "SELECT name FROM users WHERE id = ?",
            ),
            // SQLite (rusqlite, the onboarding API)
            (
                "SELECT count(*) FROM notes WHERE owner = ?1 AND tag = :tag OR x = @x",
                "SELECT count(*) FROM notes WHERE owner = ? AND tag = ? OR x = ?",
            ),
            (
                "insert into notes(body) values (?), (?), (?)",
                "INSERT INTO notes(body) VALUES (?)",
            ),
            // MySQL
            (
                "SELECT `name` FROM `shop`.`products` WHERE category = 'it\\'s' LIMIT 10 OFFSET 20",
                "SELECT `name` FROM `shop`.`products` WHERE category = ? LIMIT ? OFFSET ?",
            ),
            (
                "# a MySQL comment\nDELETE FROM carts WHERE user_id = %s",
                "DELETE FROM carts WHERE user_id = ?",
            ),
            // A sub-select in IN stays
            (
                "select a from t where b in (select c from u where d = 1)",
                "SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d = ?)",
            ),
        ];
        for (input, want) in table {
            assert_eq!(normalize(input), *want, "{input}");
        }
    }

    #[test]
    fn one_class_whatever_the_literals_and_spacing() {
        let a = normalize("SELECT * FROM placements WHERE video_id = 1");
        let b = normalize("select *\n  from placements\nwhere video_id = $1 /* x */");
        let c = normalize("SELECT * FROM placements WHERE video_id IN (1,2)");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn text_that_is_not_sql_yields_a_class_without_panicking() {
        for input in [
            "",
            "'unterminated",
            "/* unterminated",
            "$tag$ unterminated",
            "é ü 😀 ; ;",
            "\"",
            "-",
            "0x",
            "[",
        ] {
            let _ = normalize(input);
            let _ = tables(input);
        }
        assert_eq!(normalize("GET"), "GET");
    }

    proptest::proptest! {
        /// Span attributes come from the network: any text yields a class (at most a space per
        /// token longer), never a panic.
        #[test]
        fn any_text_normalizes_without_panicking(text in "\\PC*") {
            let class = normalize(&text);
            let _ = tables(&text);
            proptest::prop_assert!(class.len() <= text.len() * 2 + 1, "{class:?}");
        }
    }

    #[test]
    fn keywords_are_sorted_for_the_binary_search() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keyword(b"select"), Some("SELECT"));
        assert_eq!(keyword(b"TRANSACTION"), Some("TRANSACTION"));
        assert_eq!(keyword(b"placements"), None);
    }

    #[test]
    fn tables_are_read_after_from_join_into_and_update() {
        assert_eq!(
            tables("SELECT * FROM \"Orders\" o JOIN shop.items i ON true"),
            ["Orders", "shop.items"]
        );
        assert_eq!(tables("insert into `notes` values (1)"), ["notes"]);
        assert_eq!(tables("UPDATE stock SET a = 1"), ["stock"]);
        assert!(tables("SELECT 1").is_empty());
    }
}
